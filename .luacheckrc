-- luacheck settings for Baton's Redis scripts (`npm run lint`): Redis runs Lua 5.1 and gives
-- every script these globals; a script may not create globals of its own.
std = 'lua51'
read_globals = { 'redis', 'KEYS', 'ARGV', 'cjson', 'cmsgpack', 'bit', 'struct' }
exclude_files = { 'node_modules/**', 'dist/**', 'dist.next/**', 'dist.old-*/**', 'gen/**' }
max_line_length = 120
