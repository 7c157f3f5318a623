#!/bin/sh
# demo::echo: prints {"message": ..., "count": ..., "node": ...} as one JSON object.
# Input arrives as PT_message and PT_count (input_method environment); it is only ever
# printed through printf '%s' and escaped by awk, never evaluated.

# Escapes stdin as the body of a JSON string: backslash, quote and every control character.
# Lines are joined with \n; printf '%s\n' below terminates every line, so a message ending
# in a newline keeps it.
json_escape() {
  awk 'BEGIN {
         for (i = 1; i < 32; i++) esc[sprintf("%c", i)] = sprintf("\\u%04x", i)
         esc["\t"] = "\\t"; esc["\r"] = "\\r"; esc["\""] = "\\\""; esc["\\"] = "\\\\"
         ORS = ""
       }
       NR > 1 { print "\\n" }
       {
         n = length($0)
         for (i = 1; i <= n; i++) { c = substr($0, i, 1); print ((c in esc) ? esc[c] : c) }
       }'
}

count=${PT_count:-1}
case $count in
  '' | *[!0-9]*) count="\"$(printf '%s\n' "$count" | json_escape)\"" ;;
esac

printf '{"message": "%s", "count": %s, "node": "%s"}\n' \
  "$(printf '%s\n' "${PT_message-}" | json_escape)" \
  "$count" \
  "$(uname -n | json_escape)"
