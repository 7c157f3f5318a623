import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { processAlive } from '../lib/child-process';
import { firstExecutable } from './run-as';
import { findPython, PYTHON_ISOLATED, PYTHON_SUPERVISOR_SCRIPT } from './task-supervisor-python';
import { wrapperAlive, type WrapperSpawn } from './task-wrapper';

/**
 * One small long-lived process per agent process that forks every task, so that the agent's
 * large Node process never forks per task (docs/agent-protocol.md, "Detached execution: why a
 * supervisor"). A fork copies the page tables of the process that forks, and the child pays
 * again to tear them down at exec: from the agent's large Node process that is the biggest part
 * of what a trivial task costs, from a small perl process much less, and with vfork (the Python
 * supervisor, task-supervisor-python.ts, preferred when Python 3.10 or later is installed) nothing
 * is copied at all. Both speak the protocol below and write the same spool files.
 *
 * The perl supervisor is a constant perl script using only builtins, Fcntl and Errno (POSIX would map
 * a large library into it, and every fork pays for mapped pages; waitpid's WNOHANG is 1 on every
 * Unix). perl is part of every Debian and Ubuntu base system and of most others; without it (or
 * Python) the agent falls back to one /bin/sh wrapper per task (task-wrapper.ts). The supervisor is started
 * in its own session, so neither a restart nor a SIGKILL of the
 * agent (or of the agent's process group) reaches it. Per launch record it forks the task,
 * which before its exec makes a process group of its own (so a stop signal to the task's group
 * never reaches the supervisor; the session is the supervisor's, which has no controlling
 * terminal), takes the stdin document on a pipe and sends stdout and
 * stderr to the spool files. Before it reports the start, the supervisor writes `wrapper_pid`
 * (through a rename, so that a reader never sees it half written):
 * `<pid> <start time> <supervisor pid> <supervisor start time>`, a start time (clock ticks since
 * boot, /proc/<pid>/stat) telling a process from a later one given the same pid; so an agent
 * that saw the start (and sent TaskStarted) leaves a spool in which the next agent process
 * finds the running task. When the task ends the supervisor writes its exit status to
 * `exitcode` (128 + n for signal n) and reports it.
 *
 * Launch record (agent → supervisor): `<byte length>\n<payload>`, the payload being NUL-separated
 * fields `seq, dir, argc, argv…, envc, env "K=V"…, stdin mode ("" for /dev/null, "p" for a
 * pipe), stdin document`. Nothing is ever evaluated by a shell and nothing but the spool
 * directory's path touches the disk: input (sensitive values included) stays in pipes, as with
 * the /bin/sh wrapper. A stdin document larger than the pipe takes is finished by a writer
 * process of its own, so the supervisor never blocks. Reports (supervisor → agent), one line
 * each: `S <seq> <pid>` (the task runs), `F <seq> <reason>` (fork failed), `E <seq> <status>`
 * (the task ended and `exitcode` is written).
 *
 * When its stdin closes (the agent ended, or was killed) the supervisor reads no more records
 * but stays until its last task has ended and has its exit status written, then exits; the next
 * agent process starts a supervisor of its own and adopts the running tasks from the spool.
 */
export const SUPERVISOR_SCRIPT = String.raw`
use strict;
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
$0 = 'baton-task-supervisor';
$| = 1;
$SIG{PIPE} = 'IGNORE';
$SIG{CHLD} = sub {};
sub started { my $t = ''; if (open my $s, '<', "/proc/$_[0]/stat") { $t = <$s> } $t ? (split / /, substr($t, rindex($t, ')') + 2))[19] : 0 }
my $mystart = started($$);
my %running;
my $buf = '';
my $open = 1;
binmode STDIN;
binmode STDOUT;
sub status { my $s = shift; ($s & 127) ? 128 + ($s & 127) : $s >> 8 }
sub feed {
  my ($w, $doc) = @_;
  fcntl($w, F_SETFL, fcntl($w, F_GETFL, 0) | O_NONBLOCK);
  my $n = syswrite($w, $doc);
  if ((defined $n && $n < length $doc) || (!defined $n && $!{EAGAIN})) {
    my $k = fork();
    if (defined $k && $k == 0) {
      fcntl($w, F_SETFL, fcntl($w, F_GETFL, 0) & ~O_NONBLOCK);
      my $off = $n // 0;
      while ($off < length $doc) {
        my $m = syswrite($w, $doc, length($doc) - $off, $off);
        if (defined $m) { $off += $m } elsif (!$!{EINTR}) { last }
      }
      exit 0;
    }
  }
  close $w;
}
sub launch {
  my ($seq, $dir, $argc, @rest) = @_;
  my @argv = splice(@rest, 0, $argc);
  my $envc = shift @rest;
  my @env = splice(@rest, 0, $envc);
  my ($mode, $doc) = @rest;
  my ($r, $w);
  if ($mode eq 'p' && !pipe($r, $w)) { print "F $seq $!\n"; return }
  my $pid = fork();
  if (!defined $pid) { print "F $seq $!\n"; return }
  if ($pid == 0) {
    setpgrp(0, 0);
    $SIG{$_} = 'DEFAULT' for qw(CHLD PIPE);
    if ($mode eq 'p') { close $w; open STDIN, '<&', $r or exit 126 }
    else { open STDIN, '<', '/dev/null' }
    chdir $dir or exit 126;
    open STDOUT, '>', 'stdout' or exit 126;
    open STDERR, '>', 'stderr' or exit 126;
    %ENV = ();
    for (@env) { my ($k, $v) = split /=/, $_, 2; $ENV{$k} = $v }
    { no warnings; exec { $argv[0] } @argv; }
    my $missing = $!{ENOENT};
    print STDERR "baton-task-supervisor: cannot run $argv[0]: $!\n";
    exit($missing ? 127 : 126);
  }
  $running{$pid} = [$seq, $dir];
  if (open my $p, '>', "$dir/wrapper_pid.tmp") { print $p "$pid " . started($pid) . " $$ $mystart\n"; close $p; rename "$dir/wrapper_pid.tmp", "$dir/wrapper_pid" }
  print "S $seq $pid\n";
  if ($mode eq 'p') { close $r; feed($w, $doc) }
}
while ($open || %running) {
  while ((my $pid = waitpid(-1, 1)) > 0) {
    my $t = delete $running{$pid} or next;
    my $code = status($?);
    if (open my $e, '>', "$t->[1]/exitcode") { print $e $code; close $e }
    print "E $t->[0] $code\n";
  }
  last unless $open || %running;
  my $rin = '';
  vec($rin, fileno(STDIN), 1) = 1 if $open;
  my $n = select(my $rout = $rin, undef, undef, %running ? 0.25 : undef);
  next if $n <= 0 || !$open;
  my $got = sysread(STDIN, $buf, 65536, length $buf);
  if (!defined $got) { next if $!{EINTR} || $!{EAGAIN}; $open = 0; next }
  if ($got == 0) { $open = 0; next }
  while ($buf =~ /\A(\d+)\n/ && length($buf) >= length($1) + 1 + $1) {
    my $head = length($1) + 1;
    my $len = $1;
    my $rec = substr($buf, $head, $len);
    substr($buf, 0, $head + $len) = '';
    launch(split /\0/, $rec, -1);
  }
}
exit 0;
`;

/** Where perl is looked for. */
export const PERL_CANDIDATES = ['/usr/bin/perl', '/bin/perl', '/usr/local/bin/perl'];

/** `$0` of the supervisor, which makes it easy to find in `ps`. */
export const SUPERVISOR_NAME = 'baton-task-supervisor';

/** The perl binary, or undefined when none is installed. */
export function findPerl(candidates = PERL_CANDIDATES): string | undefined {
  return firstExecutable(candidates);
}

/** How to start a supervisor: the interpreter and its arguments (the script included). */
export interface SupervisorRuntime {
  command: string;
  args: string[];
}

/** The Python supervisor (task-supervisor-python.ts) run by `python`. */
export function pythonRuntime(python: string): SupervisorRuntime {
  return { command: python, args: [...PYTHON_ISOLATED, '-c', PYTHON_SUPERVISOR_SCRIPT] };
}

/** The perl supervisor run by `perl`. */
export function perlRuntime(perl: string): SupervisorRuntime {
  return { command: perl, args: ['-e', SUPERVISOR_SCRIPT] };
}

/** Start time of a process in clock ticks since boot (/proc/<pid>/stat), or undefined without /proc. */
async function startTimeOf(pid: number): Promise<string | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** True while `pid` is the process that started at `start` (any process with that pid without /proc). */
async function sameProcess(pid: number, start: string): Promise<boolean> {
  if (!Number.isSafeInteger(pid) || pid <= 1 || !processAlive(pid)) return false;
  const now = await startTimeOf(pid);
  return now === undefined || now === start;
}

/**
 * True while the run that `wrapper_pid` describes may still change: its task runs, or the
 * supervisor that waits for it lives and has not written `exitcode` yet. A single pid is the
 * /bin/sh wrapper's (task-wrapper.ts), alive until it has written `exitcode`.
 */
export async function runAlive(wrapperPid: string | undefined, dir: string): Promise<boolean> {
  const [pid, start, supervisor, supervisorStart] = (wrapperPid ?? '').split(/\s+/);
  if (start === undefined) return wrapperAlive(Number(pid), dir);
  if (await sameProcess(Number(pid), start)) return true;
  return (await sameProcess(Number(supervisor), supervisorStart ?? '')) && !existsSync(`${dir}/exitcode`);
}

/** A task the supervisor started. */
export interface SupervisedTask {
  /** The task's pid: leader of its session and process group. */
  pid: number;
  /**
   * Resolves when the task ended and `exitcode` is written (true), or when the supervisor ended
   * before it saw the task end (false): the task may still run, and is then watched by pid.
   */
  exited: Promise<boolean>;
}

interface Pending {
  started: (pid: number) => void;
  failed: (err: Error) => void;
  ended: (seen: boolean) => void;
  pid?: number;
}

/** Builds a launch record; throws when a field holds a NUL byte (exec could not pass it on). */
export function launchRecord(seq: number, w: WrapperSpawn): Buffer {
  const env = Object.entries(w.env).map(([k, v]) => `${k}=${v}`);
  const fields = [String(seq), w.dir, String(w.argv.length), ...w.argv, String(env.length), ...env, w.stdin === undefined ? '' : 'p', w.stdin ?? ''];
  for (const f of fields.slice(0, -1))
    if (f.includes('\0')) throw new Error(`an argument or environment variable of the task holds a NUL byte: ${JSON.stringify(f.slice(0, 40))}`);
  const payload = Buffer.from(fields.join('\0'));
  return Buffer.concat([Buffer.from(`${payload.length}\n`), payload]);
}

/**
 * The supervisor process, started on first use and again after it ended. Its handles hold the
 * event loop only while tasks it started are running, so an idle agent (or a test) can exit.
 */
export class TaskSupervisor {
  /** The supervisor; its stdin and stdout are pipes, which Node makes sockets (ref, unref). */
  private child?: ChildProcessByStdio<Socket, Socket, null>;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private lineBuf = '';

  constructor(private readonly runtime: SupervisorRuntime) {}

  /** Pid of the supervisor process while it runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the task `w` describes; resolves once it runs, rejects when it could not be forked. */
  launch(w: WrapperSpawn): Promise<SupervisedTask> {
    const seq = ++this.seq;
    const record = launchRecord(seq, w);
    const child = this.ensure();
    return new Promise<SupervisedTask>((resolve, reject) => {
      let ended!: (seen: boolean) => void;
      const exited = new Promise<boolean>((r) => (ended = r));
      this.pending.set(seq, {
        started: (pid) => resolve({ pid, exited }),
        failed: reject,
        ended,
      });
      this.hold();
      child.stdin.write(record);
    });
  }

  private ensure(): ChildProcessByStdio<Socket, Socket, null> {
    if (this.child) return this.child;
    const { command, args } = this.runtime;
    const child = spawn(command, args, { argv0: SUPERVISOR_NAME, detached: true, stdio: ['pipe', 'pipe', 'ignore'], env: {} }) as ChildProcessByStdio<
      Socket,
      Socket,
      null
    >;
    this.child = child;
    this.lineBuf = '';
    // The supervisor gone mid-write is handled by its exit below.
    child.stdin.on('error', () => undefined);
    child.on('error', () => undefined);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => this.onData(text));
    child.once('exit', () => this.onExit(child));
    this.release();
    return child;
  }

  private onData(text: string): void {
    const lines = (this.lineBuf + text).split('\n');
    this.lineBuf = lines.pop()!;
    for (const line of lines) {
      const [kind, seqText, ...rest] = line.split(' ');
      const seq = Number(seqText);
      const p = this.pending.get(seq);
      if (!p) continue;
      if (kind === 'S') {
        p.pid = Number(rest[0]);
        p.started(p.pid);
      } else if (kind === 'F') {
        this.pending.delete(seq);
        p.failed(new Error(`cannot fork: ${rest.join(' ')}`));
      } else if (kind === 'E') {
        this.pending.delete(seq);
        p.ended(true);
      }
      this.release();
    }
  }

  private onExit(child: ChildProcessByStdio<Socket, Socket, null>): void {
    if (this.child !== child) return;
    this.child = undefined;
    for (const [seq, p] of this.pending) {
      this.pending.delete(seq);
      if (p.pid === undefined) p.failed(new Error(`the task supervisor (${this.runtime.command}) ended before it started the task`));
      else p.ended(false);
    }
  }

  /** Keeps the process alive while tasks run (their end is awaited). */
  private hold(): void {
    this.child?.ref();
    this.child?.stdout.ref();
  }

  /** Lets the process exit when no task runs. */
  private release(): void {
    if (this.pending.size > 0) return;
    this.child?.unref();
    this.child?.stdin.unref();
    this.child?.stdout.unref();
  }
}

let shared: TaskSupervisor | null | undefined;

/**
 * The supervisor of this process (every TaskRunner in it uses the one): the Python one when
 * Python 3.10 or later is installed, else the perl one, else undefined (the /bin/sh wrapper per
 * task). BATON_AGENT_SUPERVISOR in the agent's environment chooses: `perl` for the perl one,
 * `0` for none.
 */
export function processSupervisor(): TaskSupervisor | undefined {
  if (shared === undefined) {
    const choice = process.env.BATON_AGENT_SUPERVISOR;
    const python = choice === '0' || choice === 'perl' ? undefined : findPython();
    const perl = python || choice === '0' ? undefined : findPerl();
    shared = python ? new TaskSupervisor(pythonRuntime(python)) : perl ? new TaskSupervisor(perlRuntime(perl)) : null;
  }
  return shared ?? undefined;
}
