import { spawnSync } from 'node:child_process';
import { firstExecutable } from './run-as';

/**
 * The task supervisor in Python, preferred over the perl one (task-supervisor.ts) when Python
 * 3.10 or later is installed: the same launch records in, the same report lines out, the same
 * spool files written, but each task is started with vfork (subprocess.Popen uses vfork on Linux
 * from Python 3.10 when no preexec_fn, user or group is asked for). A fork, from perl as from
 * Node, marks every writable page of the forking process copy-on-write, so the supervisor and
 * the child until its exec pay a page fault for each page either of them writes; vfork shares
 * the memory until the exec and copies nothing. Why this matters and how it was measured:
 * docs/agent-protocol.md, "Detached execution: why a supervisor".
 *
 * The child gets a process group of its own (setsid before Python 3.11, which makes it a session
 * leader too), its stdin on a pipe (or /dev/null), stdout and stderr in the spool files, the
 * spool directory as working directory, the launch record's environment and no other open file.
 * Python ignores SIGPIPE; Popen restores it in the child. When the agent is gone, reports are
 * dropped, no more records are read, and the supervisor stays until its last task has ended and
 * has its exit status written. Every child is reaped here with
 * waitpid(-1), never by Popen (its returncode is set at once so that it never waits for the
 * pid). A stdin document larger than the pipe takes is written as the task reads it. A task that
 * cannot be executed (missing, not executable) is reported like the perl supervisor's: its
 * message in the spool's stderr and exit status 127 (not found) or 126, from a child that only
 * exits.
 */
export const PYTHON_SUPERVISOR_SCRIPT = String.raw`
import errno, os, select, signal, subprocess, sys
def started(pid):
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            t = f.read()
        return t[t.rindex(b')') + 2:].split(b' ')[19].decode()
    except (OSError, ValueError, IndexError):
        return '0'
me = '%d %s' % (os.getpid(), started(os.getpid()))
wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
signal.set_wakeup_fd(wake_w)
signal.signal(signal.SIGCHLD, lambda s, f: None)
group = {'process_group': 0} if sys.version_info >= (3, 11) else {'start_new_session': True}
FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
running = {}
feeding = {}
def say(line):
    try:
        os.write(1, line.encode())
    except OSError:
        pass
def status(s):
    return 128 + os.WTERMSIG(s) if os.WIFSIGNALED(s) else os.WEXITSTATUS(s)
def write_file(path, text):
    fd = os.open(path, FLAGS, 0o666)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
def feed(w, doc):
    try:
        n = os.write(w, doc)
    except BlockingIOError:
        n = 0
    except OSError:
        n = len(doc)
    if n < len(doc):
        feeding[w] = memoryview(doc)[n:]
    else:
        os.close(w)
def failed_exec(d, argv, e, err):
    code = 127 if e.errno == errno.ENOENT and e.filename != d else 126
    try:
        os.write(err, ('baton-task-supervisor: cannot run %s: %s\n' % (os.fsdecode(argv[0]), e.strerror)).encode())
    except OSError:
        pass
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)
        os._exit(code)
    return pid
def launch(f):
    seq, d, argc = f[0].decode(), f[1], int(f[2])
    argv = f[3:3 + argc]
    envc = int(f[3 + argc])
    env = dict(e.split(b'=', 1) for e in f[4 + argc:4 + argc + envc])
    mode, doc = f[4 + argc + envc], f[5 + argc + envc]
    fds = []
    try:
        r = w = None
        if mode == b'p':
            r, w = os.pipe2(os.O_CLOEXEC)
            fds += [r, w]
            os.set_blocking(w, False)
        out = os.open(d + b'/stdout', FLAGS, 0o666)
        fds.append(out)
        err = os.open(d + b'/stderr', FLAGS, 0o666)
        fds.append(err)
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL if r is None else r, stdout=out, stderr=err, cwd=d, env=env, close_fds=True, **group)
            p.returncode = 0
            pid = p.pid
        except OSError as e:
            pid = failed_exec(d, argv, e, err)
    except OSError as e:
        say('F %s %s\n' % (seq, e.strerror or e))
        for fd in fds:
            os.close(fd)
        return
    os.close(out)
    os.close(err)
    running[pid] = (seq, d)
    try:
        write_file(d + b'/wrapper_pid.tmp', '%d %s %s\n' % (pid, started(pid), me))
        os.rename(d + b'/wrapper_pid.tmp', d + b'/wrapper_pid')
    except OSError:
        pass
    say('S %s %d\n' % (seq, pid))
    if r is not None:
        os.close(r)
        feed(w, doc)
buf = b''
reading = True
while reading or running:
    while running:
        try:
            pid, s = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        t = running.pop(pid, None)
        if t is None:
            continue
        code = status(s)
        try:
            write_file(t[1] + b'/exitcode', str(code))
        except OSError:
            pass
        say('E %s %d\n' % (t[0], code))
    if not (reading or running):
        break
    ready, writable, _ = select.select([wake_r] + ([0] if reading else []), list(feeding), [], 0.25 if running else None)
    for w in writable:
        rest = feeding[w]
        try:
            n = os.write(w, rest)
        except BlockingIOError:
            continue
        except OSError:
            n = len(rest)
        if n < len(rest):
            feeding[w] = rest[n:]
        else:
            del feeding[w]
            os.close(w)
    if wake_r in ready:
        try:
            os.read(wake_r, 4096)
        except BlockingIOError:
            pass
    if 0 in ready:
        try:
            chunk = os.read(0, 65536)
        except OSError:
            chunk = b''
        if not chunk:
            reading = False
            continue
        buf += chunk
        while True:
            nl = buf.find(b'\n')
            if nl < 0 or len(buf) < nl + 1 + int(buf[:nl]):
                break
            end = nl + 1 + int(buf[:nl])
            rec = buf[nl + 1:end]
            buf = buf[end:]
            launch(rec.split(b'\0'))
`;

/** Where python3 is looked for. */
export const PYTHON_CANDIDATES = ['/usr/bin/python3', '/usr/local/bin/python3', '/bin/python3'];

/** Arguments that run a script in Python without the user's site packages or PYTHON* variables. */
export const PYTHON_ISOLATED = ['-I', '-S'];

/**
 * A python3 that can run the supervisor (3.10 or later, where Popen starts children with vfork),
 * or undefined. Asks the interpreter once, which takes a few tens of milliseconds.
 */
export function findPython(candidates = PYTHON_CANDIDATES): string | undefined {
  const python = firstExecutable(candidates);
  if (!python) return undefined;
  const r = spawnSync(python, [...PYTHON_ISOLATED, '-c', 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'], { stdio: 'ignore', env: {} });
  return r.status === 0 ? python : undefined;
}
