#!/bin/sh
# demo::fail: a task that always fails, for testing how failures are reported.
echo "demo::fail failing on purpose" >&2
exit 3
