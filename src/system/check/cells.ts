// Cells: names (one name rule, src/units.ts), duplicates, network namespaces.
import { nameProblem } from '../../units.js';
import type { CellConfig } from '../config-schema.js';
import type { AddProblem } from './format.js';

/** The namespace a check reports for cells without one. */
export const HOST_NS = '(host)';

/** Check the cells; returns the namespace of each cell by name. */
export function checkCells(cells: readonly CellConfig[], cellPaths: readonly number[], add: AddProblem): (cell: string) => string {
  const cellIndex = new Map<string, number>();
  cells.forEach((c, ci) => {
    const i = cellPaths[ci]!;
    const badName = nameProblem(c.name, 'cell');
    if (badName) add(['cells', i, 'name'], badName);
    const first = cellIndex.get(c.name);
    if (first !== undefined) add(['cells', i, 'name'], `duplicate cell name ${JSON.stringify(c.name)} (first at cells[${cellPaths[first]}])`);
    else cellIndex.set(c.name, ci);
    const badNs = c.netns === undefined ? undefined : nameProblem(c.netns, 'network namespace');
    if (badNs) add(['cells', i, 'netns'], badNs);
  });
  return (cell) => cells[cellIndex.get(cell) ?? -1]?.netns ?? HOST_NS;
}
