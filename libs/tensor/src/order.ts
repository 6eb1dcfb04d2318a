/**
 * Orders strings by their UTF-8 bytes, as Rust and Python's safetensors order names (JS `<`
 * compares UTF-16 code units, which differs above U+FFFF).
 */
export function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}
