// Every public member has TSDoc, for editor hovers: each export of the three
// entries (shmchan, shmchan/nats, shmchan/otel) and each member of the classes,
// interfaces and option types they export, as the published .d.ts files declare
// them. Read with the TypeScript compiler API; runs nothing of the package.
import { createRequire } from 'node:module';
import path from 'node:path';
import { expect, it } from 'vitest';
import { packageRoot } from './helpers';

// TypeScript 7 has no JavaScript API yet: the copy that @arethetypeswrong/core uses has
const ts: typeof import('typescript') = createRequire(path.join(packageRoot, 'node_modules', '@arethetypeswrong', 'core', 'package.json'))('typescript');

const dist = path.join(packageRoot, 'dist');
const entries = ['index.d.ts', 'nats.d.ts', 'otel.d.ts'].map((file) => path.join(dist, file));

it('documents every export of every entry and every member they expose', () => {
  const program = ts.createProgram(entries, { strict: true, noEmit: true, types: ['node'], typeRoots: [path.join(packageRoot, 'node_modules', '@types')] });
  const checker = program.getTypeChecker();
  const undocumented: string[] = [];
  const ours = (declaration: import('typescript').Declaration) => declaration.getSourceFile().fileName.startsWith(dist);
  const documented = (symbol: import('typescript').Symbol) =>
    symbol.getDocumentationComment(checker).length > 0 || (symbol.declarations ?? []).some((d) => ts.getJSDocCommentsAndTags(d).length > 0);
  const seen = new Set<import('typescript').Symbol>();

  const visitMembers = (owner: string, type: import('typescript').Type) => {
    for (const member of checker.getPropertiesOfType(type)) {
      const declarations = (member.declarations ?? []).filter(ours);
      if (declarations.length === 0 || member.name.startsWith('__@channelInternals')) continue;
      if (declarations.some((d) => ts.getCombinedModifierFlags(d) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected))) continue;
      if (!documented(member)) undocumented.push(`${owner}.${member.name}`);
    }
  };

  for (const entry of entries) {
    const module = checker.getSymbolAtLocation(program.getSourceFile(entry)!)!;
    for (let symbol of checker.getExportsOfModule(module)) {
      const name = symbol.name;
      if (symbol.flags & ts.SymbolFlags.Alias) symbol = checker.getAliasedSymbol(symbol);
      if (seen.has(symbol)) continue;
      seen.add(symbol);
      if (!documented(symbol)) undocumented.push(`${path.basename(entry)}: ${name}`);
      const declaration = symbol.declarations?.[0];
      if (declaration === undefined || !ours(declaration)) continue;
      if (symbol.flags & ts.SymbolFlags.Class) {
        visitMembers(name, checker.getDeclaredTypeOfSymbol(symbol));
        visitMembers(name, checker.getTypeOfSymbolAtLocation(symbol, declaration));
      } else if (symbol.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias)) {
        const type = checker.getDeclaredTypeOfSymbol(symbol);
        if (type.isUnion()) continue; // a union of names: documented as a whole
        visitMembers(name, type);
      }
    }
  }
  expect(undocumented).toEqual([]);
});
