#!/bin/sh
# demo::uptime: plain-text output, so the task's result value is {"_output": ...}.
uptime 2>/dev/null || cat /proc/uptime
