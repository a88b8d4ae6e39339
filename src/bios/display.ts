/**
 * `--display text`: the guest's text screen drawn on the terminal with ANSI colours and cursor
 * moves, row by row as rows change, at the bounded rate the screen callbacks come at. It takes
 * over the terminal (the alternate screen) once the guest uses the screen as a screen (a mode
 * set, cursor positioning, writing video memory or the VGA directly); until then, and in `auto`
 * mode when it never does, teletype text goes to stdout as plain text.
 */
import { attributeSgr, CP437, type ScreenCapture } from './screen.js';

const ESC = '\x1b';
const ENTER_ALTERNATE_SCREEN = `${ESC}[?1049h${ESC}[H${ESC}[2J`;
const LEAVE_ALTERNATE_SCREEN = `${ESC}[0m${ESC}[?25h${ESC}[?1049l`;
const SHOW_CURSOR = `${ESC}[?25h`;
const HIDE_CURSOR = `${ESC}[?25l`;
const RESET = `${ESC}[0m`;

export type DisplayMode = 'text' | 'none' | 'auto';

export interface ScreenActivity {
  /** The guest used INT 10h beyond teletype, or programmed the VGA. */
  screenUsed: boolean;
  /** Teletype characters so far. */
  teletype: number;
}

export class TerminalDisplay {
  private drawing = false;
  private previous: string[] = [];
  private lastCells = '';
  private lastTeletype = 0;

  constructor(
    private readonly write: (text: string) => void,
    private readonly mode: DisplayMode,
  ) {}

  /** Whether the screen is being drawn (teletype text then stays off stdout). */
  get active(): boolean {
    return this.drawing;
  }

  /** A new screen: decides whether to take over the terminal, and draws what changed. */
  offer(screen: ScreenCapture, activity: ScreenActivity): void {
    if (this.mode === 'none') return;
    const cells = JSON.stringify(screen.cells);
    // Video memory that changed without teletype output was written by the guest itself.
    const directWrite = this.lastCells !== '' && cells !== this.lastCells && activity.teletype === this.lastTeletype;
    this.lastCells = cells;
    this.lastTeletype = activity.teletype;
    if (!this.drawing && (this.mode === 'text' || activity.screenUsed || directWrite)) {
      this.drawing = true;
      this.write(ENTER_ALTERNATE_SCREEN);
    }
    if (this.drawing) this.draw(screen);
  }

  private draw(screen: ScreenCapture): void {
    let out = HIDE_CURSOR;
    const rows = screen.text ? screen.cells.map((row) => this.renderRow(row, screen)) : [`(graphics mode ${screen.mode.toString(16)}h)`];
    rows.forEach((row, r) => {
      if (this.previous[r] === row) return;
      out += `${ESC}[${r + 1};1H${row}${RESET}`;
    });
    this.previous = rows;
    if (screen.cursor.visible) out += `${ESC}[${screen.cursor.row + 1};${screen.cursor.column + 1}H${SHOW_CURSOR}`;
    this.write(out);
  }

  private renderRow(row: ScreenCapture['cells'][number], screen: ScreenCapture): string {
    let out = '';
    let current = -1;
    for (const cell of row) {
      if (cell.attribute !== current) {
        current = cell.attribute;
        out += `${ESC}[0;${attributeSgr(current, screen)}m`;
      }
      out += CP437[cell.char] ?? ' ';
    }
    return out;
  }

  /** Gives the terminal back (the alternate screen closes; the shell's screen returns). */
  close(): void {
    if (!this.drawing) return;
    this.drawing = false;
    this.write(LEAVE_ALTERNATE_SCREEN);
  }
}
