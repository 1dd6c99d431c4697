/*
 * coordinator_main.c - `emailverify-coordinator`: the cluster's coordinator.
 * Today: `migrate` (apply the schema migrations and print the version).
 */
#include <stdio.h>
#include <string.h>
#include "emv_db.h"
#include "emv_util.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: emailverify-coordinator migrate [--database URL]\n"
		   "  URL defaults to $DATABASE_URL (postgresql://user@host:port/db)\n");
}

int main(int argc, char **argv)
{
	const char *url = NULL;
	char err[1024];
	int version = 0;
	PGconn *c;

	if (argc < 2 || strcmp(argv[1], "migrate") != 0) {
		usage(argc < 2 ? stderr : (strcmp(argv[1], "--help") == 0 ? stdout : stderr));
		return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--database") == 0 && i + 1 < argc) {
			url = argv[++i];
		} else {
			fprintf(stderr, "emailverify-coordinator: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (!(c = emv_db_connect(url, err, sizeof err))) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		return 1;
	}
	if (emv_db_migrate(c, &version, err, sizeof err) != EMV_OK) {
		fprintf(stderr, "emailverify-coordinator: %s\n", err);
		PQfinish(c);
		return 1;
	}
	printf("schema version %d\n", version);
	PQfinish(c);
	return 0;
}
