// The adaptive spin of waiting calls (src/core/wait.ts SpinBudget): pure arithmetic, no timing.
import { expect, it } from 'vitest';
import { SpinBudget } from '../dist/core/wait.js';

it('halves the spin after waits that slept, down to none, and doubles it back after waits the polling caught', () => {
  const budget = new SpinBudget(50);
  expect(budget.current(0)).toBe(50);
  const trail: number[] = [];
  for (let i = 0; i < 8; i++) {
    budget.waited(0, false); // it slept anyway: the polling was wasted
    trail.push(budget.current(0));
  }
  expect(trail).toEqual([25, 12.5, 6.25, 3.125, 1.5625, 0.78125, 0, 0]);
  expect(budget.current(1)).toBe(50); // each wait line has its own budget
  budget.waited(0, false);
  expect(budget.current(0)).toBe(0);
  // a small budget that catches the answer grows back
  const small = new SpinBudget(50);
  for (let i = 0; i < 4; i++) small.waited(0, false);
  const back: number[] = [];
  for (let i = 0; i < 5; i++) {
    small.waited(0, true);
    back.push(small.current(0));
  }
  expect(back).toEqual([6.25, 12.5, 25, 50, 50]);
});

it('keeps halving when the answer comes just after the full budget (a sleeping peer), where it used to stay at the full budget', () => {
  // Each such wait polled the whole budget, slept anyway and paid a wake-up on top:
  // slower than not polling (bench/README.md). The old rule counted a wait that
  // ended within the budget plus two sleeps as quick.
  const budget = new SpinBudget(50);
  for (let i = 0; i < 7; i++) budget.waited(0, false);
  expect(budget.current(0)).toBe(0);
});

it('with no spin left, polls the full budget every 16th wait, and a probe that catches the answer restores it', () => {
  const budget = new SpinBudget(50);
  for (let i = 0; i < 7; i++) budget.waited(0, false);
  const spins: number[] = [];
  for (let i = 0; i < 32; i++) {
    spins.push(budget.current(0));
    budget.waited(0, false); // every wait sleeps, the probes too
  }
  expect(spins.filter((s) => s > 0)).toEqual([50, 50]);
  expect(spins.indexOf(50)).toBe(15);
  for (let i = 0; i < 15; i++) expect(budget.current(0)).toBe(0);
  expect(budget.current(0)).toBe(50); // the probe
  budget.waited(0, true); // ... caught the answer: the other side is quick again
  expect(budget.current(0)).toBe(50);
  expect(budget.current(0)).toBe(50);
});

it('never spins when spinMicros is 0', () => {
  const budget = new SpinBudget(0);
  for (let i = 0; i < 40; i++) {
    expect(budget.current(0)).toBe(0);
    budget.waited(0, false);
  }
});
