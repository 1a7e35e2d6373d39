// The adaptive spin of waiting calls (src/wait.ts SpinBudget): pure arithmetic, no timing.
import { expect, it } from 'vitest';
import { SpinBudget } from '../dist/core/wait.js';

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

it('counts a wait that slept as quick when it ended within the budget plus what two sleeps cost', () => {
  // Without the allowance a handle at no spin never spun again: each of its waits
  // sleeps, and the sleep alone outlasts the budget (round trips of 64 KiB stayed
  // at 50-90 us instead of 11-12 us).
  const budget = new SpinBudget(50);
  for (let i = 0; i < 8; i++) budget.waited(0, 5_000);
  expect(budget.current(0)).toBe(0);
  budget.waited(0, 251); // longer than 50 us + 2 x 100 us: still nothing
  expect(budget.current(0)).toBe(0);
  const back: number[] = [];
  for (let i = 0; i < 7; i++) {
    budget.waited(0, 220); // both sides slept, and the answer came soon after
    back.push(budget.current(0));
  }
  expect(back).toEqual([1, 2, 4, 8, 16, 32, 50]);
  budget.waited(0, 251);
  expect(budget.current(0)).toBe(25);
});

it('never spins when spinMicros is 0', () => {
  const budget = new SpinBudget(0);
  budget.waited(0, 0);
  expect(budget.current(0)).toBe(0);
});
