/** A unified-style line diff (LCS, fine for specs), with `context` unchanged lines around each change; "" when equal. */
export function unifiedDiff(a: string, b: string, labels: [string, string], context = 3): string {
  const x = a === "" ? [] : a.replace(/\n$/, "").split("\n");
  const y = b === "" ? [] : b.replace(/\n$/, "").split("\n");
  const lcs: number[][] = Array.from({ length: x.length + 1 }, () => new Array<number>(y.length + 1).fill(0));
  for (let i = x.length - 1; i >= 0; i--)
    for (let j = y.length - 1; j >= 0; j--) lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  // Each op with the (1-based) line numbers it has in a and b.
  const ops: { t: " " | "-" | "+"; s: string; a: number; b: number }[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length || j < y.length) {
    if (i < x.length && j < y.length && x[i] === y[j]) ops.push({ t: " ", s: x[i++], a: i, b: ++j });
    else if (i < x.length && (j >= y.length || lcs[i + 1][j] >= lcs[i][j + 1])) ops.push({ t: "-", s: x[i++], a: i, b: j });
    else ops.push({ t: "+", s: y[j++], a: i, b: j });
  }
  const keep = ops.map(() => false);
  ops.forEach((o, k) => {
    if (o.t !== " ") for (let d = Math.max(0, k - context); d <= Math.min(ops.length - 1, k + context); d++) keep[d] = true;
  });
  if (!keep.some(Boolean)) return "";
  const lines = [`--- ${labels[0]}`, `+++ ${labels[1]}`];
  for (let k = 0; k < ops.length; k++) {
    if (!keep[k]) continue;
    const start = k;
    while (k < ops.length && keep[k]) k++;
    const hunk = ops.slice(start, k);
    const aLen = hunk.filter((o) => o.t !== "+").length;
    const bLen = hunk.filter((o) => o.t !== "-").length;
    const first = hunk[0];
    const aStart = first.t === "+" ? first.a + 1 : first.a;
    const bStart = first.t === "-" ? first.b + 1 : first.b;
    lines.push(`@@ -${aLen ? aStart : aStart - 1},${aLen} +${bLen ? bStart : bStart - 1},${bLen} @@`, ...hunk.map((o) => o.t + o.s));
  }
  return lines.join("\n") + "\n";
}
