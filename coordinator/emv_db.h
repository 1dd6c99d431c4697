/*
 * emv_db.h - the coordinator's PostgreSQL schema (design §6) and its
 * versioned migrations.
 *
 * The schema is owned here: every migration is one SQL script with a
 * version number, applied in order inside one transaction each, recorded in
 * schema_migrations.  emv_db_migrate() takes a transaction-scoped advisory
 * lock first, so coordinators starting together apply each migration once.
 * A database newer than this binary (a version we do not know) is refused.
 *
 * Errors: functions return EMV_OK / EMV_ERR and write libpq's message, with
 * the step that failed, into the caller's buffer.
 */
#ifndef EMV_DB_H
#define EMV_DB_H

#include <stddef.h>
#include <libpq-fe.h>

/* Connect (blocking; for start-up and admin commands).  conninfo is a
 * libpq connection string or URI; NULL means $DATABASE_URL. */
PGconn *emv_db_connect(const char *conninfo, char *err, size_t errlen);

/* Apply pending migrations; *version gets the schema version afterwards. */
int emv_db_migrate(PGconn *c, int *version, char *err, size_t errlen);

/* The newest schema version this binary knows. */
int emv_db_schema_version(void);

#endif
