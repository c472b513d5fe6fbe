// Hover / lock precedence of the heatmaps and the sentence (the CircuitsVis `useHoverLock` rule, as a small
// tested unit): a hovered cell wins while the pointer is on it; a click locks a cell; clicking the locked cell
// again (or Esc) unlocks it. The query token shown is hover row > locked row > `query` > default.

export interface Cell {
  row: number;
  col: number;
}

/** What the hover/lock state is derived from (the durable part lives in the model: `locked`, `query`). */
export interface LockSource {
  locked: readonly number[]; // [query, key] or []
  query: number; // query trait (-1 = none)
  defaultQuery?: number; // meta.default_query
  n: number; // number of (row) tokens
  cols?: number; // number of column tokens when the map is not square (default n)
}

/** New values of the `locked` / `query` traits after a user action. */
export interface LockChange {
  locked: number[];
  query?: number;
}

export class HoverLock {
  hover: Cell | null = null;

  constructor(private source: () => LockSource) {}

  /** Set the hovered cell; returns whether it changed. */
  setHover(cell: Cell | null): boolean {
    const same = cell === this.hover || (!!cell && !!this.hover && cell.row === this.hover.row && cell.col === this.hover.col);
    if (same) return false;
    this.hover = cell ? { row: cell.row, col: cell.col } : null;
    return true;
  }

  lockedCell(): Cell | null {
    const l = this.source().locked;
    return l.length === 2 ? { row: l[0], col: l[1] } : null;
  }

  /** The selected query token (lock > query trait > default); with `withHover`, a hovered row wins. -1 = none. */
  query(withHover = false): number {
    const { locked, query, defaultQuery: d, n } = this.source();
    const q = withHover && this.hover ? this.hover.row : locked.length === 2 ? locked[0] : query;
    if (q >= 0 && q < n) return q;
    return d !== undefined && d >= 0 && d < n ? d : n ? 0 : -1;
  }

  /** Cell keyboard moves and zoom start from: the locked cell, else the (hovered) query on the diagonal. */
  focus(): [number, number] {
    const l = this.lockedCell();
    if (l) return [l.row, l.col];
    const q = Math.max(0, this.query(true));
    const { n, cols } = this.source();
    return [q, Math.min(q, Math.max(0, (cols ?? n) - 1))];
  }

  /** Cell whose values the readout shows (hover > lock), and whether that is the lock. */
  shown(): { cell: Cell; locked: boolean } | null {
    if (this.hover) return { cell: this.hover, locked: false };
    const l = this.lockedCell();
    return l ? { cell: l, locked: true } : null;
  }

  /** Click on a cell: unlock when it is the locked cell, else lock it (its row becomes the query). */
  click(cell: Cell): LockChange {
    const l = this.lockedCell();
    if (l && l.row === cell.row && l.col === cell.col) return { locked: [] };
    return { locked: [cell.row, cell.col], query: cell.row };
  }

  /** Arrow key: move the focus cell by (dr, dc), clamped to the matrix, and lock it. */
  move(dr: number, dc: number): LockChange {
    const { n, cols } = this.source();
    const [q, k] = this.focus();
    const r = Math.max(0, Math.min(n - 1, q + dr)), c = Math.max(0, Math.min((cols ?? n) - 1, k + dc));
    return { locked: [r, c], query: r };
  }

  /** Make token i the query (clicking a token): unlocks. */
  static query(i: number): LockChange {
    return { locked: [], query: i };
  }
}
