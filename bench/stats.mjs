// Small statistics shared by the benchmark scripts.

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

export const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))];
};

/** The median with the first and third quartiles: a paired ratio's centre and spread. */
export const quartiles = (xs) => ({ q1: percentile(xs, 25), median: median(xs), q3: percentile(xs, 75) });
