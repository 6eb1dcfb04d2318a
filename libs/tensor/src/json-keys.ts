/**
 * JSON.parse keeps the last of duplicate object keys silently; a header with two entries under
 * one name is ambiguous, so the parser runs this scan (over text JSON.parse already accepted)
 * to find the first duplicate key of any object.
 */
export function findDuplicateKey(text: string): string | undefined {
  // One entry per open container: a key set for objects, null for arrays.
  const stack: (Set<string> | null)[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i + 1;
      i++;
      let escaped = false;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) { escaped = true; i += 2; continue; }
        if (d === 0x22) break;
        i++;
      }
      const raw = text.slice(start, i);
      i++;
      const top = stack[stack.length - 1];
      if (top instanceof Set) {
        let j = i;
        while (j < n && isWs(text.charCodeAt(j))) j++;
        if (text.charCodeAt(j) === 0x3a /* : */) {
          const key = escaped ? (JSON.parse(`"${raw}"`) as string) : raw;
          if (top.has(key)) return key;
          top.add(key);
          i = j + 1;
        }
      }
      continue;
    }
    if (c === 0x7b /* { */) stack.push(new Set());
    else if (c === 0x5b /* [ */) stack.push(null);
    else if (c === 0x7d || c === 0x5d) stack.pop();
    i++;
  }
  return undefined;
}

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}
