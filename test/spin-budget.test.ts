// The adaptive spin of waiting calls (src/wait.ts SpinBudget): pure arithmetic, no timing.
import { expect, it } from 'vitest';
import { SpinBudget } from '../dist/wait.js';

it('halves the spin after waits that outlast it, down to none, and doubles it back after quick ones', () => {
  const budget = new SpinBudget(50);
  expect(budget.current(0)).toBe(50);
  const trail: number[] = [];
  for (let i = 0; i < 8; i++) {
    budget.waited(0, 5_000); // the other side took 5 ms: spinning was wasted
    trail.push(budget.current(0));
  }
  expect(trail).toEqual([25, 12.5, 6.25, 3.125, 1.5625, 0.78125, 0, 0]);
  expect(budget.current(1)).toBe(50); // each wait line has its own budget
  const back: number[] = [];
  for (let i = 0; i < 8; i++) {
    budget.waited(0, 20); // answered within the full budget: spinning would have paid
    back.push(budget.current(0));
  }
  expect(back).toEqual([1, 2, 4, 8, 16, 32, 50, 50]);
});

it('never spins when spinMicros is 0', () => {
  const budget = new SpinBudget(0);
  budget.waited(0, 0);
  expect(budget.current(0)).toBe(0);
});
