# Turns the Lua files shipped with vmpool into one C source of byte arrays,
# so the binary carries them and the lua module can put them in
# package.preload. Run in script mode:
#   cmake -DOUT=<file.c> -DROOT=<source dir> -DFILES=<a.lua;b.lua> -P embed_lua.cmake
# Module names come from the path under lua/: lua/vmpool/provider.lua is
# "vmpool.provider".
set(body "")
set(table "")
set(i 0)
foreach(f ${FILES})
  file(READ ${f} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n    "
         hex "${hex}")
  file(RELATIVE_PATH rel ${ROOT} ${f})
  string(REGEX REPLACE "^lua/" "" mod "${rel}")
  string(REGEX REPLACE "\\.lua$" "" mod "${mod}")
  string(REPLACE "/" "." mod "${mod}")
  string(APPEND body "static const unsigned char src_${i}[] = {\n    ${hex}0x00};\n")
  string(APPEND table "    {\"${mod}\", \"@${rel}\", (const char *)src_${i}, sizeof src_${i} - 1},\n")
  math(EXPR i "${i} + 1")
endforeach()
file(WRITE ${OUT}.tmp "/* Generated from lua/ by src/lua/embed_lua.cmake; do not edit. */\n"
     "#include \"lua/script_internal.h\"\n\n${body}\n"
     "const vmp_lua_embedded vmp_lua_embedded_modules[] = {\n${table}    {NULL, NULL, NULL, 0},\n};\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUT}.tmp ${OUT})
file(REMOVE ${OUT}.tmp)
