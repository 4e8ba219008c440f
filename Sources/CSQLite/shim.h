// SQLite for Swift: the header, plus the variadic and macro APIs as
// prefixed static inline functions (STYLE.md 8).
#ifndef GRIDEDGE_CSQLITE_SHIM_H
#define GRIDEDGE_CSQLITE_SHIM_H

#include <sqlite3.h>

/// SQLITE_TRANSIENT is a macro casting -1 to a function pointer.
static inline sqlite3_destructor_type csqlite_transient(void) { return SQLITE_TRANSIENT; }

/// `sqlite3_db_config` is variadic: turn on SQLITE_DBCONFIG_DEFENSIVE.
static inline int csqlite_db_config_defensive(sqlite3 *db, int on) {
  return sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, on, (int *)0);
}

#endif
