# The Lua layer's build steps, included from the top-level CMakeLists.txt
# once every module is defined:
#  - lua/vmpool/*.lua become C arrays (embed_lua.cmake) compiled into the
#    lua module, which preloads them;
#  - vmpool/core.so, the engine as a Lua C module for a plain lua5.4
#    (package.cpath = <build>/lua/?.so). It carries every vmpool object but
#    not liblua: the interpreter that loads it provides Lua.
if(NOT TARGET vmp_lua_obj)
  return()
endif()

file(GLOB VMP_LUA_FILES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/lua/vmpool/*.lua)
set(VMP_LUA_GENERATED ${CMAKE_BINARY_DIR}/generated/vmp_lua_sources.c)
add_custom_command(
  OUTPUT ${VMP_LUA_GENERATED}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/generated
  COMMAND ${CMAKE_COMMAND} -DOUT=${VMP_LUA_GENERATED} -DROOT=${PROJECT_SOURCE_DIR}
          "-DFILES=${VMP_LUA_FILES}" -P ${PROJECT_SOURCE_DIR}/src/lua/embed_lua.cmake
  DEPENDS ${VMP_LUA_FILES} ${PROJECT_SOURCE_DIR}/src/lua/embed_lua.cmake
  COMMENT "Embedding lua/vmpool/*.lua"
  VERBATIM)
target_sources(vmp_lua_obj PRIVATE ${VMP_LUA_GENERATED})

if(EXISTS ${PROJECT_SOURCE_DIR}/src/lua/core/core.c)
  set(deps ${VMP_ALL_DEPS})
  list(REMOVE_ITEM deps PkgConfig::LUA)
  add_library(vmpool_lua_core MODULE src/lua/core/core.c ${VMP_ALL_OBJECTS})
  target_include_directories(vmpool_lua_core PRIVATE ${PROJECT_SOURCE_DIR}/src
                             ${LUA_INCLUDE_DIRS})
  target_link_libraries(vmpool_lua_core PRIVATE ${deps})
  set_target_properties(vmpool_lua_core PROPERTIES
    PREFIX "" OUTPUT_NAME core
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lua/vmpool)
endif()
