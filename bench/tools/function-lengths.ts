/**
 * Lists the longest functions in a source tree, measured in lines from the
 * function's first to its last line (nested functions count towards their
 * parent too, as an editor shows them). Used to find and track "god units".
 *
 *   node bench/tools/function-lengths.ts [dir=src] [top=10]
 *
 * Reads files with the TypeScript compiler API (a devDependency) so arrow
 * functions, methods, accessors and constructors are all counted.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import ts from 'typescript';

interface FunctionLength {
  file: string;
  name: string;
  line: number;
  lines: number;
}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts'))
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}

function functionName(node: ts.FunctionLikeDeclaration, source: ts.SourceFile): string {
  if (node.name) return node.name.getText(source);
  if (ts.isConstructorDeclaration(node)) {
    const owner = node.parent;
    return `${ts.isClassLike(owner) && owner.name ? owner.name.text : '(class)'}.constructor`;
  }
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) {
    return parent.name.getText(source);
  }
  if (ts.isCallExpression(parent)) {
    const callee = parent.expression.getText(source);
    return `(callback of ${callee.length > 40 ? `${callee.slice(0, 37)}...` : callee})`;
  }
  return '(anonymous)';
}

function measure(file: string, text: string, root: string): FunctionLength[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: FunctionLength[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const declaration = node as ts.FunctionLikeDeclaration;
      const start = source.getLineAndCharacterOfPosition(declaration.getStart(source)).line;
      const end = source.getLineAndCharacterOfPosition(declaration.getEnd()).line;
      found.push({ file: relative(root, file), name: functionName(declaration, source), line: start + 1, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

const dir = process.argv[2] ?? 'src';
const top = Number(process.argv[3] ?? 10);
const all: FunctionLength[] = [];
for (const file of await sourceFiles(dir)) {
  all.push(...measure(file, await readFile(file, 'utf8'), process.cwd()));
}
all.sort((a, b) => b.lines - a.lines);
console.log('| lines | function | where |');
console.log('|---:|---|---|');
for (const entry of all.slice(0, top)) {
  console.log(`| ${entry.lines} | \`${entry.name}\` | ${entry.file}:${entry.line} |`);
}
