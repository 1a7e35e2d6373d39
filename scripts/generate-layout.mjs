#!/usr/bin/env node
// Writes src/core/layout.ts from the wire format's `#define SHMCHAN_<NAME> <expr>`
// lines in native/include/shmchan.h, so TypeScript and C read one definition.
//
//   node scripts/generate-layout.mjs                 npm run layout: (re)writes the file
//   node scripts/generate-layout.mjs --check         exit 1, saying what differs, when the
//                                                    file is not what the header gives
//   --output FILE                                    another file to write or check
//
// Plain Node, no dependencies. An expression may use integer literals (decimal,
// hex, octal, with u/U/l/L suffixes), earlier SHMCHAN_ names, parentheses and
// C's integer operators; anything else stops the generator with the line it met.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const headerPath = 'native/include/shmchan.h';
const scriptPath = 'scripts/generate-layout.mjs';

const U32 = 1n << 32n;
const INT_MIN = -(1n << 31n);
const INT_MAX = (1n << 31n) - 1n;

/** C's integer arithmetic on int and unsigned int, the only types the header uses. */
class Expression {
  constructor(text, constants) {
    this.tokens = text.match(/0[xX][0-9a-fA-F]+[uUlL]*|\d+[uUlL]*|[A-Za-z_]\w*|<<|>>|\S/g) ?? [];
    this.at = 0;
    this.constants = constants;
  }

  evaluate() {
    const result = this.binary(0);
    if (this.at < this.tokens.length) throw new Error(`unexpected '${this.tokens[this.at]}'`);
    return result;
  }

  // Lowest to highest, as in C.
  static levels = [['|'], ['^'], ['&'], ['<<', '>>'], ['+', '-'], ['*', '/', '%']];

  binary(level) {
    if (level === Expression.levels.length) return this.unary();
    let left = this.binary(level + 1);
    while (Expression.levels[level].includes(this.tokens[this.at])) {
      const op = this.tokens[this.at++];
      left = apply(op, left, this.binary(level + 1));
    }
    return left;
  }

  unary() {
    const token = this.tokens[this.at++];
    if (token === undefined) throw new Error('the expression ends too early');
    if (token === '(') {
      const inner = this.binary(0);
      if (this.tokens[this.at++] !== ')') throw new Error("missing ')'");
      return inner;
    }
    if (token === '-') return apply('-', { value: 0n, unsigned: false }, this.unary());
    if (token === '+') return this.unary();
    if (token === '~') {
      const operand = this.unary();
      return typed(~operand.value, operand.unsigned);
    }
    if (/^\d/.test(token)) return literal(token);
    const name = /^SHMCHAN_(\w+)$/.exec(token)?.[1];
    if (name !== undefined && this.constants.has(name)) return this.constants.get(name);
    throw new Error(`'${token}' is not a number or an earlier SHMCHAN_ constant`);
  }
}

function literal(token) {
  const [, digits, suffix] = /^(0[xX][0-9a-fA-F]+|\d+)([uUlL]*)$/.exec(token) ?? [];
  if (digits === undefined) throw new Error(`'${token}' is not an integer literal`);
  if (/l/i.test(suffix)) throw new Error(`'${token}': long constants do not fit the 32-bit layout`);
  const octal = /^0\d/.test(digits);
  if (octal && /[89]/.test(digits)) throw new Error(`'${token}' is not an octal literal`);
  const value = octal ? BigInt(`0o${digits.slice(1)}`) : BigInt(digits);
  // A hex or octal literal above INT_MAX is unsigned int in C; a decimal one would be long.
  const unsigned = /u/i.test(suffix) || (!/^[1-9]/.test(digits) && value > INT_MAX);
  if (value >= U32 || (!unsigned && value > INT_MAX)) throw new Error(`'${token}' does not fit 32 bits`);
  return { value, unsigned };
}

/** A result of type unsigned wraps modulo 2^32; a signed one must not overflow. */
function typed(value, unsigned) {
  if (unsigned) return { value: ((value % U32) + U32) % U32, unsigned };
  if (value < INT_MIN || value > INT_MAX) throw new Error('signed overflow');
  return { value, unsigned };
}

function apply(op, a, b) {
  // Shifts take the left operand's type; the others the usual arithmetic conversions.
  const unsigned = op === '<<' || op === '>>' ? a.unsigned : a.unsigned || b.unsigned;
  const [x, y] = unsigned ? [typed(a.value, true).value, typed(b.value, true).value] : [a.value, b.value];
  if ((op === '/' || op === '%') && y === 0n) throw new Error('division by zero');
  if ((op === '<<' || op === '>>') && (b.value < 0n || b.value >= 32n)) throw new Error(`shift by ${b.value}`);
  const result = {
    '|': () => x | y,
    '^': () => x ^ y,
    '&': () => x & y,
    '<<': () => x << y,
    '>>': () => x >> y,
    '+': () => x + y,
    '-': () => x - y,
    '*': () => x * y,
    '/': () => x / y, // BigInt division truncates toward zero, as C does
    '%': () => x % y,
  }[op]();
  return typed(result, unsigned);
}

/** The header's constants in order: name (without SHMCHAN_), value, literal form, comment. */
export function readConstants(text) {
  const lines = text.split('\n');
  const constants = new Map();
  const found = [];
  for (let i = 0; i < lines.length; i++) {
    const define = /^\s*#\s*define\s+SHMCHAN_(\w+)(\(?)\s*(.*)$/.exec(lines[i]);
    if (define === null) continue;
    const [, name, parameters, rest] = define;
    if (parameters) continue; // a function-like macro is no constant
    let body = rest;
    let comment = '';
    const open = body.indexOf('/*');
    if (open >= 0) {
      comment = body.slice(open + 2);
      body = body.slice(0, open);
      // A comment may go on over the following lines, each starting with '*'.
      while (!comment.includes('*/') && i + 1 < lines.length) comment += ' ' + lines[++i].replace(/^\s*\*?/, '');
      comment = comment.slice(0, comment.indexOf('*/'));
    }
    body = body.replace(/\/\/.*$/, '').trim();
    if (body === '') continue; // the include guard
    let result;
    try {
      result = new Expression(body, constants).evaluate();
    } catch (error) {
      throw new Error(`${headerPath}:${i + 1}: SHMCHAN_${name} ${body}: ${error.message}`);
    }
    constants.set(name, result);
    found.push({ name, value: Number(result.value), hex: /^0[xX][0-9a-fA-F]+[uU]?$/.test(body), comment: comment.replace(/\s+/g, ' ').trim() });
  }
  return found;
}

export function render(constants) {
  const out = [
    `// generated by ${scriptPath} from ${headerPath}; do not edit`,
    '// (npm run layout rewrites it). The comments are the header\'s, so "above" and',
    '// "below" point into the header.',
    '',
  ];
  for (const { name, value, hex, comment } of constants) {
    if (comment) out.push(`/** ${comment} */`);
    out.push(`export const ${name} = ${hex ? `0x${value.toString(16)}` : value};`);
  }
  return out.join('\n') + '\n';
}

/** The differences between two renderings, one line each, by constant where possible. */
function differences(expected, actual) {
  const values = (text) => new Map([...text.matchAll(/^export const (\w+) = (.+);$/gm)].map((m) => [m[1], m[2]]));
  const want = values(expected);
  const have = values(actual);
  const lines = [];
  for (const [name, value] of want) {
    if (!have.has(name)) lines.push(`${name}: missing (the header gives ${value})`);
    else if (have.get(name) !== value) lines.push(`${name}: ${have.get(name)}, but the header gives ${value}`);
  }
  for (const name of have.keys()) if (!want.has(name)) lines.push(`${name}: not in the header`);
  if (lines.length === 0) {
    const a = expected.split('\n');
    const b = actual.split('\n');
    const at = a.findIndex((line, i) => line !== b[i]);
    const line = at >= 0 ? at : a.length;
    lines.push(`line ${line + 1}: ${JSON.stringify(b[line] ?? '(end of file)')}, expected ${JSON.stringify(a[line] ?? '(end of file)')}`);
  }
  return lines;
}

function main(args) {
  const check = args.includes('--check');
  const outputAt = args.indexOf('--output');
  const output = outputAt >= 0 ? path.resolve(args[outputAt + 1]) : path.join(root, 'src/core/layout.ts');
  const expected = render(readConstants(readFileSync(path.join(root, headerPath), 'utf8')));
  const shown = path.relative(process.cwd(), output);
  if (!check) {
    writeFileSync(output, expected);
    console.log(`${shown}: written from ${headerPath}`);
    return 0;
  }
  let actual;
  try {
    actual = readFileSync(output, 'utf8');
  } catch {
    actual = '';
  }
  if (actual === expected) return 0;
  console.error(`${shown} is not what ${headerPath} gives (npm run layout rewrites it):`);
  for (const line of differences(expected, actual)) console.error(`  ${line}`);
  return 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (error) {
    console.error(`generate-layout: ${error.message}`);
    process.exitCode = 2;
  }
}
