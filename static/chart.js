// The overview's chart: attempts per time bucket as stacked SVG bars (succeeded below,
// failed above), with a success-rate line.

import { h, svg } from './ui.js';

const WIDTH = 720;
const HEIGHT = 200;
const PAD = { top: 12, right: 44, bottom: 24, left: 44 };

function label(unix, bucketSeconds) {
  const d = new Date(unix * 1000);
  return bucketSeconds >= 86400
    ? d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })
    : d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/** The chart for a `delivery_stats` answer. */
export function deliveryChart(stats) {
  const buckets = stats.buckets;
  const max = Math.max(1, ...buckets.map((b) => b.succeeded + b.failed));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const step = plotW / Math.max(1, buckets.length);
  const barW = Math.max(1, step * 0.8);
  const y = (n) => PAD.top + plotH - (n / max) * plotH;
  const total = stats.totals.succeeded + stats.totals.failed;
  const rate = total > 0 ? Math.round((100 * stats.totals.succeeded) / total) : null;
  const summary = total === 0
    ? 'No delivery attempts in this window.'
    : `${total} attempts: ${stats.totals.succeeded} succeeded, ${stats.totals.failed} failed (${rate}% success).`;

  const parts = [
    svg('title', {}, `Delivery attempts per ${stats.bucket_seconds / 60} minutes. ${summary}`),
    svg('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(0), y2: y(0), class: 'axis' }),
    svg('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(max), y2: y(max), class: 'grid' }),
    svg('text', { x: PAD.left - 6, y: y(max) + 4, class: 'tick', 'text-anchor': 'end' }, String(max)),
    svg('text', { x: PAD.left - 6, y: y(0) + 4, class: 'tick', 'text-anchor': 'end' }, '0'),
    svg('text', { x: WIDTH - PAD.right + 6, y: PAD.top + 4, class: 'tick' }, '100%'),
    svg('text', { x: WIDTH - PAD.right + 6, y: y(0) + 4, class: 'tick' }, '0%'),
  ];
  // The success rate of each bucket with attempts, as a dot; dots of neighbouring
  // buckets are joined (a gap where a bucket had none, so no line crosses it).
  const runs = [[]];
  buckets.forEach((b, i) => {
    const x = PAD.left + i * step + (step - barW) / 2;
    const n = b.succeeded + b.failed;
    if (b.succeeded > 0) {
      parts.push(svg('rect', { x, y: y(b.succeeded), width: barW, height: y(0) - y(b.succeeded), class: 'bar-ok' },
        svg('title', {}, `${label(b.start, stats.bucket_seconds)}: ${b.succeeded} succeeded`)));
    }
    if (b.failed > 0) {
      parts.push(svg('rect', { x, y: y(n), width: barW, height: y(b.succeeded) - y(n), class: 'bar-failed' },
        svg('title', {}, `${label(b.start, stats.bucket_seconds)}: ${b.failed} failed`)));
    }
    if (n > 0) {
      const [cx, cy] = [x + barW / 2, PAD.top + plotH - (b.succeeded / n) * plotH];
      runs[runs.length - 1].push(`${cx},${cy}`);
      parts.push(svg('circle', { cx, cy, r: 2.5, class: 'rate-dot' },
        svg('title', {}, `${label(b.start, stats.bucket_seconds)}: ${Math.round((100 * b.succeeded) / n)}% success`)));
    } else if (runs[runs.length - 1].length) {
      runs.push([]);
    }
  });
  for (const run of runs.filter((r) => r.length > 1)) {
    parts.push(svg('polyline', { points: run.join(' '), class: 'rate-line' }));
  }
  const ticks = Math.min(6, buckets.length);
  for (let t = 0; t < ticks; t++) {
    const i = Math.round((t * (buckets.length - 1)) / Math.max(1, ticks - 1));
    const x = PAD.left + i * step + step / 2;
    parts.push(svg('text', { x, y: HEIGHT - 6, class: 'tick', 'text-anchor': 'middle' }, label(buckets[i].start, stats.bucket_seconds)));
  }
  const chart = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', class: 'chart', 'aria-label': summary }, ...parts);
  return h('figure', { class: 'chart-figure' }, chart,
    h('figcaption', {}, h('span', { class: 'key key-ok' }, 'succeeded'), ' ', h('span', { class: 'key key-failed' }, 'failed'),
      ' ', h('span', { class: 'key key-rate' }, 'success rate'), ' — ', summary));
}
