/**
 * A value a peer sent (an AE title, an application context name, an address), made safe to put
 * in a log line, an audit record, an MQTT event or a metric: printable ASCII only (anything else,
 * and quotes and backslashes, escaped as \xNN), at most `max` characters, with the length of
 * what was cut. A peer chooses these bytes; it must not choose the size or the shape of what the
 * gateway writes about it.
 */
export function peerText(value: string, max = 64): string {
  let out = '';
  for (const ch of value.slice(0, max)) {
    const c = ch.charCodeAt(0);
    out += c >= 0x20 && c <= 0x7e && ch !== '"' && ch !== '\\' ? ch : `\\x${(c & 0xff).toString(16).padStart(2, '0')}`;
  }
  return value.length > max ? `${out}…(${value.length} characters)` : out;
}
