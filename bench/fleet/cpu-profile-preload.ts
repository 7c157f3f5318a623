import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

/**
 * Preloaded with `--require` (through NODE_OPTIONS, which refuses `--cpu-prof` itself) into the
 * services when bench/run-bench.ts profiles: starts V8's sampling profiler at once and writes
 * `CPU.<pid>.cpuprofile` into BATON_BENCH_PROFILE when the process exits (the services exit
 * through process.exit after draining). An in-thread inspector session answers synchronously,
 * which is what lets the 'exit' handler write the profile.
 */

/** Microseconds between samples: V8's default for --cpu-prof. */
const SAMPLING_INTERVAL_US = 1000;

const dir = process.env.BATON_BENCH_PROFILE;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: SAMPLING_INTERVAL_US });
  // With BATON_BENCH_PROFILE_ON_SIGNAL the profile starts at the first SIGUSR2 instead (a
  // benchmark profiling only its runs, not the agents connecting). The handler stays for the
  // process's life: a benchmark signals at each of its scenarios, and a SIGUSR2 with no handler
  // ends the process.
  if (process.env.BATON_BENCH_PROFILE_ON_SIGNAL) {
    let started = false;
    process.on('SIGUSR2', () => {
      if (!started) session.post('Profiler.start');
      started = true;
    });
  } else session.post('Profiler.start');
  process.once('exit', () => {
    session.post('Profiler.stop', (err, result) => {
      if (!err) writeFileSync(join(dir, `CPU.${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
