/* SPDX-License-Identifier: Apache-2.0 */
// web/console/chart.js - a horizontal bar chart drawn as SVG elements (no
// library, no inline style: sizes are SVG attributes, colours CSS classes).
const NS = 'http://www.w3.org/2000/svg';

function el(name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// bars: [{label, value, cls}]; desc: the element that describes the chart
// in words for screen readers.
export function barChart(svg, bars, desc) {
  const width = 400, row = 24, labelW = 150, numW = 60;
  const max = Math.max(1, ...bars.map((b) => b.value));
  const h = Math.max(row, bars.length * row);
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${width} ${h}`);
  bars.forEach((b, i) => {
    const y = i * row;
    const w = Math.round(((width - labelW - numW) * b.value) / max);
    svg.append(el('text', { x: 0, y: y + 16 }, b.label));
    svg.append(el('rect', { class: 'track', x: labelW, y: y + 4, width: width - labelW - numW, height: 16 }));
    svg.append(el('rect', { class: `bar ${b.cls || ''}`, x: labelW, y: y + 4, width: w, height: 16 }));
    svg.append(el('text', { x: width - numW + 6, y: y + 16 }, b.value.toLocaleString()));
  });
  if (!bars.length) svg.append(el('text', { x: 0, y: 16 }, 'nothing yet'));
  if (desc) desc.textContent = bars.map((b) => `${b.label}: ${b.value}`).join(', ') || 'nothing yet';
}
