// format.js - numbers, sizes, durations and times as the page shows them.

const DASH = '\u2014';

export function num(value, digits = 0) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return DASH;
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

// Requests or messages per second.
export function rate(value) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return DASH;
  return (value >= 100 ? num(value, 0) : value >= 10 ? num(value, 1) : num(value, 2)) + '/s';
}

export function ms(value) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return DASH;
  return (value >= 100 ? num(value, 0) : value >= 10 ? num(value, 1) : num(value, 2)) + ' ms';
}

export function bytes(value) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return DASH;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = value;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

// CPU as cores used: 0.012 cores is "1.2 %" of one core.
export function cpu(cores) {
  if (typeof cores !== 'number' || !Number.isFinite(cores)) return DASH;
  return num(cores * 100, cores >= 0.1 ? 0 : 1) + ' %';
}

export function duration(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) return DASH;
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

// A time from the API: ms since the epoch (a number) or an ISO-8601 string.
export function toDate(value) {
  if (value === null || value === undefined || value === '') return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function ago(date, now = Date.now()) {
  if (!date) return DASH;
  const seconds = Math.max(0, (now - date.getTime()) / 1000);
  return seconds < 1 ? 'just now' : duration(seconds) + ' ago';
}

// "2026-12-06 22:40:01" in the browser's time zone.
export function stamp(date) {
  if (!date) return DASH;
  const p = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())} ` +
    `${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())}`;
}
