import { describe, expect, it } from 'vitest';
import { RetryBudget } from '../../src/resilience/budget.js';

function clock(start = 0): { now(): number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('RetryBudget (Finagle semantics)', () => {
  it('starts with a reserve of minPerSecond x ttl retries', () => {
    const c = clock();
    const b = new RetryBudget(0.2, 10, 10_000, c);
    expect(b.balance).toBe(100);
    let granted = 0;
    while (b.tryWithdraw()) granted++;
    expect(granted).toBe(100);
    expect(b.balance).toBe(0);
  });

  it('earns ratio x requests on top of the reserve, never more', () => {
    const c = clock();
    const b = new RetryBudget(0.2, 0, 10_000, c);
    for (let i = 0; i < 1_000; i++) b.onRequest();
    let granted = 0;
    while (b.tryWithdraw()) granted++;
    expect(granted).toBe(200);
  });

  it('deposits and withdrawals leave the window after ttl', () => {
    const c = clock();
    const b = new RetryBudget(0.5, 0, 10_000, c);
    for (let i = 0; i < 10; i++) b.onRequest();
    expect(b.balance).toBe(5);
    c.advance(10_001);
    expect(b.balance).toBe(0);
    expect(b.tryWithdraw()).toBe(false);
  });

  it('a ratio of 0 allows only the reserve', () => {
    const c = clock();
    const b = new RetryBudget(0, 1, 10_000, c);
    for (let i = 0; i < 1_000; i++) b.onRequest();
    let granted = 0;
    while (b.tryWithdraw()) granted++;
    expect(granted).toBe(10);
  });
});
