import type Router from '@koa/router';
import type { ConsoleKit } from '../kit.ts';

export function dataSourceSection(_router: Router, _kit: ConsoleKit): void {}
