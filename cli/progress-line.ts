/** Widest progress bar, as mco's RPC::Progress (docs/choria-compat.md §5.3). */
const BAR_WIDTH_MAX = 60;

/**
 * One live line on stderr, redrawn in place: only on a terminal and never in `--json` mode
 * (docs/toolchain.md "CLI conventions"), so pipes and scripts see nothing of it.
 */
export class ProgressLine {
  private shown = false;

  constructor(
    readonly enabled: boolean,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  /** Progress for a command: on when stderr is a terminal and the output is not JSON. */
  static forCommand(json: boolean | undefined): ProgressLine {
    return new ProgressLine(json !== true && process.stderr.isTTY === true && process.env.TERM !== 'dumb');
  }

  /** Shows `text` in place of the previous line. */
  update(text: string): void {
    if (!this.enabled) return;
    const width = (this.stream.columns || 80) - 1;
    this.stream.write(`\r\x1b[2K${text.slice(0, width)}`);
    this.shown = true;
  }

  /** ` * [ ====>    ] i / N`, mco's bar. */
  bar(done: number, total: number, label = ''): void {
    const width = Math.min(BAR_WIDTH_MAX, Math.max(10, (this.stream.columns || 80) - 30 - label.length));
    const filled = total > 0 ? Math.round((done / total) * width) : 0;
    const body = filled >= width ? '='.repeat(width) : `${'='.repeat(Math.max(0, filled - 1))}>${' '.repeat(width - Math.max(1, filled))}`;
    this.update(`${label}${label ? ' ' : ''} * [ ${body} ] ${done} / ${total}`);
  }

  /** Removes the line, so what follows starts on a clean line. */
  clear(): void {
    if (this.shown) this.stream.write('\r\x1b[2K');
    this.shown = false;
  }
}
