#!/bin/sh
# demo (demo::init): prints the JSON document it got on stdin back as {"input": <document>}.
# The input is copied by cat, never parsed or evaluated; no input at all gives null.
input=$(cat)
printf '{"input": %s}\n' "${input:-null}"
