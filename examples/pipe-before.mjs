// A child process writes, its parent reads: through the child's stdout, a pipe.
import { spawn } from 'node:child_process';
import { pipeline } from 'node:stream/promises';

if (process.argv[2] === 'child') {
  for (let i = 1; i <= 3; i++) process.stdout.write(`line ${i}\n`);
} else {
  const child = spawn(process.execPath, [process.argv[1], 'child'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await pipeline(child.stdout, process.stdout);
}
