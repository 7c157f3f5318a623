import { Command } from 'commander';
import { DEFAULT_ENVIRONMENT } from '../../lib/names';
import { CliError } from '../cli-error';
import { Clients } from '../connection';
import { paramFlags } from '../param-options';
import { getTask, listTasks } from '../task-catalog';
import { runReservedFlags } from './tasks-run';

/** Subcommands of `baton` and of `baton tasks`, for completion. */
const TOP_COMMANDS = ['tasks', 'discover', 'dev', 'config', 'completion'];
const TASKS_COMMANDS = ['list', 'show', 'run', 'status', 'watch', 'cancel', 'runs'];

/**
 * bash: the words up to the cursor are re-split from COMP_LINE, because bash's own splitting
 * breaks `demo::echo` at the colons; candidates are trimmed back to the part after the last colon.
 */
const BASH_SCRIPT = `# baton completion for bash: eval "$(baton completion bash)"
_baton() {
  local line="\${COMP_LINE:0:$COMP_POINT}" cur
  local -a words
  read -ra words <<< "$line"
  [[ "$line" == *" " ]] && words+=("")
  cur="\${words[\${#words[@]}-1]}"
  local IFS=$'\\n'
  COMPREPLY=($(compgen -W "$(baton __complete "\${words[@]:1}" 2>/dev/null)" -- "$cur"))
  if [[ "$cur" == *:* ]]; then
    local prefix="\${cur%"\${cur##*:}"}" i
    for i in "\${!COMPREPLY[@]}"; do COMPREPLY[$i]="\${COMPREPLY[$i]#"$prefix"}"; done
  fi
}
complete -o default -F _baton baton
`;

const ZSH_SCRIPT = `#compdef baton
# baton completion for zsh: eval "$(baton completion zsh)" (after compinit)
_baton() {
  local -a candidates
  candidates=("\${(@f)$(baton __complete "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  compadd -- \${candidates:#}
}
compdef _baton baton
`;

/** `baton completion bash|zsh`: prints a script that completes subcommands, task names and a task's parameter flags. */
export function completionCommand(done: (code: number) => void): Command {
  return new Command('completion')
    .description('print a shell completion script: eval "$(baton completion bash)" or zsh')
    .argument('<shell>', 'bash or zsh')
    .action((shell: string) => {
      if (shell === 'bash') process.stdout.write(BASH_SCRIPT);
      else if (shell === 'zsh') process.stdout.write(ZSH_SCRIPT);
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
  try {
    if (words[0] === 'completion' && words.length === 2) return ['bash', 'zsh'];
    if (words[0] === 'config' && words.length === 2) return ['show'];
    if (words[0] !== 'tasks') return [];
    if (words.length === 2) return [...TASKS_COMMANDS, ...(await taskNames())];
    if ((words[1] === 'run' || words[1] === 'show') && words.length === 3) return await taskNames();
    const current = words[words.length - 1];
    if (words[1] === 'run' && words.length >= 4 && (current === '' || current.startsWith('-'))) {
      const task = await getTask(clients, environmentOf(words), words[2]);
      const flags = paramFlags(task.parameters, runReservedFlags()).flatMap((f) => (f.kind === 'BOOLEAN' && !f.repeatable ? [`--${f.flag}`, `--no-${f.flag}`] : [`--${f.flag}`]));
      return [...flags, ...[...runReservedFlags()].map((f) => (f === 'color' ? '--no-color' : `--${f}`))];
    }
    return [];
  } catch {
    return [];
  } finally {
    clients.close();
  }
}

/** The hidden `baton __complete <words...>` the completion scripts call: one candidate per line. */
export async function completeCommand(words: string[]): Promise<number> {
  const candidates = await completeWords(words);
  if (candidates.length > 0) process.stdout.write(`${candidates.join('\n')}\n`);
  return 0;
}
