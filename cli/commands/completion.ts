import { batonScript } from '../../lib/package-root';
import { Command } from 'commander';
import { DEFAULT_ENVIRONMENT } from '../../lib/names';
import { CliError } from '../cli-error';
import { Clients } from '../connection';
import { paramFlags } from '../param-options';
import { getTask, listTasks } from '../task-catalog';
import { runReservedFlags } from './tasks-run';

/** Subcommands of `baton` and of `baton tasks`, for completion. */
const TOP_COMMANDS = ['tasks', 'discover', 'dev', 'pki', 'config', 'completion', 'help'];
const TASKS_COMMANDS = ['list', 'show', 'run', 'status', 'watch', 'cancel', 'runs', 'help'];
const PKI_COMMANDS = ['init', 'issue'];
const PKI_ROLES = ['service', 'agent', 'operator'];
/** Subcommands of `baton tasks` that take a task id. */
const TASK_ID_COMMANDS = new Set(['status', 'watch', 'cancel']);
/** Recent task ids offered for completion. */
const RECENT_RUNS = 20;

/** A string as one double-quoted shell word. */
function quoted(s: string): string {
  return `"${s.replace(/(["\\$`])/g, '\\$1')}"`;
}

/**
 * How the scripts call this very CLI: node and the absolute path of its script, so
 * completion works whether `baton` is on PATH (a global install or `npm link`) or only
 * reachable through `npx baton`, and no npm start-up is paid per Tab.
 */
function selfCommand(): string {
  return `${quoted(process.execPath)} ${quoted(batonScript())}`;
}

/**
 * bash: the words up to the cursor are re-split from COMP_LINE, because bash's own splitting
 * breaks `demo::echo` at the colons; candidates are trimmed back to the part after the last
 * colon. `npx baton ...` is completed too; other npx commands keep bash's default.
 */
function bashScript(): string {
  return `# baton completion for bash: eval "$(baton completion bash)" (or npx baton completion bash)
_baton_words() {
  local line="\${COMP_LINE:0:$COMP_POINT}" cur
  local -a words
  read -ra words <<< "$line"
  [[ "$line" == *" " ]] && words+=("")
  [[ "\${words[0]}" == npx ]] && words=("\${words[@]:1}")
  cur="\${words[\${#words[@]}-1]}"
  local IFS=$'\\n'
  COMPREPLY=($(compgen -W "$(${selfCommand()} __complete "\${words[@]:1}" 2>/dev/null)" -- "$cur"))
  if [[ "$cur" == *:* ]]; then
    local prefix="\${cur%"\${cur##*:}"}" i
    for i in "\${!COMPREPLY[@]}"; do COMPREPLY[$i]="\${COMPREPLY[$i]#"$prefix"}"; done
  fi
}
_baton() { _baton_words; }
_baton_npx() {
  if [[ "\${COMP_WORDS[1]}" == baton && $COMP_CWORD -ge 2 ]]; then _baton_words; else COMPREPLY=(); fi
}
complete -o default -F _baton baton
complete -o default -F _baton_npx npx
`;
}

function zshScript(): string {
  return `#compdef baton
# baton completion for zsh: eval "$(baton completion zsh)" (after compinit; npx baton works too)
_baton() {
  local -a candidates args
  if [[ "\${words[1]}" == npx ]]; then
    # Other npx commands, and the command word itself, keep zsh's default completion.
    [[ "\${words[2]}" == baton && $CURRENT -ge 3 ]] || { _default; return; }
    args=("\${(@)words[3,CURRENT]}")
  else
    args=("\${(@)words[2,CURRENT]}")
  fi
  candidates=("\${(@f)$(${selfCommand()} __complete "\${(@)args}" 2>/dev/null)}")
  compadd -- \${candidates:#}
}
compdef _baton baton npx
`;
}

/** `baton completion bash|zsh`: prints a script that completes subcommands, task names and a task's parameter flags. */
export function completionCommand(done: (code: number) => void): Command {
  return new Command('completion')
    .description('print a shell completion script: eval "$(baton completion bash)" or zsh')
    .argument('<shell>', 'bash or zsh')
    .action((shell: string) => {
      if (shell === 'bash') process.stdout.write(bashScript());
      else if (shell === 'zsh') process.stdout.write(zshScript());
      else throw new CliError(`unknown shell '${shell}'; expected bash or zsh`);
      done(0);
    });
}

/** The value of `-E`/`--environment` among the words, or the default. */
function environmentOf(words: string[]): string {
  const i = words.findIndex((w) => w === '-E' || w === '--environment');
  return i >= 0 && words[i + 1] ? words[i + 1] : DEFAULT_ENVIRONMENT;
}

/**
 * The candidates for the last of `words` (the words after `baton`, the last one being the one
 * under the cursor, possibly empty). Task names and parameter flags come from the metadata
 * service; when it cannot be reached there are simply fewer candidates.
 */
export async function completeWords(words: string[]): Promise<string[]> {
  if (words.length <= 1) return TOP_COMMANDS;
  const clients = new Clients({});
  const taskNames = async () => (await listTasks(clients, environmentOf(words))).map((t) => t.name);
  const previous = words[words.length - 2];
  const current = words[words.length - 1];
  try {
    if (words[0] === 'help' && words.length === 2) return TOP_COMMANDS;
    if (words[0] === 'completion' && words.length === 2) return ['bash', 'zsh'];
    if (words[0] === 'config' && words.length === 2) return ['show'];
    if (words[0] === 'pki') {
      if (words.length === 2) return PKI_COMMANDS;
      if (words[1] === 'issue' && words.length === 3) return PKI_ROLES;
      return [];
    }
    // Values of the flags that take node names or task ids, wherever they stand.
    if (previous === '-I' || previous === '--with-identity') return await nodeNames(clients);
    if (previous === '--rerun') return await recentTaskIds(clients);
    if (words[0] === 'discover') return [];
    if (words[0] !== 'tasks') return [];
    if (words.length === 2) return [...TASKS_COMMANDS, ...(await taskNames())];
    if ((words[1] === 'run' || words[1] === 'show') && words.length === 3) return await taskNames();
    if (TASK_ID_COMMANDS.has(words[1]) && words.length === 3) return await recentTaskIds(clients);
    if (words[1] === 'run' && words.length >= 4) {
      const task = await getTask(clients, environmentOf(words), words[2]);
      const flags = paramFlags(task.parameters, runReservedFlags());
      const valueOf = flags.find((f) => `--${f.flag}` === previous && f.kind === 'STRING');
      if (valueOf && !current.startsWith('-')) return enumMembers(valueOf.parameter.type);
      if (current === '' || current.startsWith('-')) {
        const names = flags.flatMap((f) => (f.kind === 'BOOLEAN' && !f.repeatable ? [`--${f.flag}`, `--no-${f.flag}`] : [`--${f.flag}`]));
        return [...names, ...[...runReservedFlags()].map((f) => (f === 'color' ? '--no-color' : `--${f}`))];
      }
    }
    return [];
  } catch {
    return [];
  } finally {
    clients.close();
  }
}

/** The members of an `Enum[...]` type (inside Optional or an Array too), else none. */
export function enumMembers(type: string): string[] {
  const m = /\bEnum\[([^\]]*)\]/.exec(type);
  if (!m) return [];
  return m[1]
    .split(',')
    .map((v) => v.trim().replace(/^(['"])(.*)\1$/, '$2'))
    .filter(Boolean);
}

/** The identities of the online nodes. */
async function nodeNames(clients: Clients): Promise<string[]> {
  const { nodes } = await clients.call('scheduler', (c) => c.discoverNodes, {
    filter: { identities: [], classes: [], facts: [], agents: [], compound: [] },
    includeOffline: false,
  });
  return nodes.map((n) => n.identity);
}

/** The task ids of the newest runs. */
async function recentTaskIds(clients: Clients): Promise<string[]> {
  const page = await clients.call('results', (c) => c.listRuns, { pageSize: RECENT_RUNS, pageToken: '' });
  return page.runs.map((r) => r.taskId);
}

/** The hidden `baton __complete <words...>` the completion scripts call: one candidate per line. */
export async function completeCommand(words: string[]): Promise<number> {
  const candidates = await completeWords(words);
  if (candidates.length > 0) process.stdout.write(`${candidates.join('\n')}\n`);
  return 0;
}
