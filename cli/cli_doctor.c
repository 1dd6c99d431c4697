/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_doctor.c - `emailverify doctor`: can this machine verify email at all?
 * Every check of emv_preflight.h (DNS, outbound port 25, HELO, reverse DNS,
 * SPF, DNSBLs), one PASS/WARN/FAIL line each with what to do about it.
 *
 * Exit: 0 every check passed, 1 warnings only, 2 at least one failure
 * (verdicts from this machine would be wrong or impossible), 3 usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "emv_util.h"

static void doctor_usage(FILE *f)
{
	fprintf(f, "usage: emailverify doctor [options]\n\n"
		   "Check that this machine can verify email: its resolver, outbound port 25, and how\n"
		   "mail servers will see it (HELO name, reverse DNS, SPF of the probe sender,\n"
		   "blocklists).  Exit 0: all passed, 1: warnings, 2: something fails.\n\n"
		   "options:\n"
		   "  --dnsbl LIST           blocklist zones to look our address up in (comma-separated;\n"
		   "                         default " EMV_PF_DNSBL_DEFAULT "; 'none')\n"
		   "  --no-port25            do not try TCP connections to mail servers\n" EMV_SETUP_HELP);
}

int cli_doctor(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dnsbl", required_argument, NULL, 5001 },
		{ "no-port25", no_argument, NULL, 5002 },
		{ "help", no_argument, NULL, 'h' },
		EMV_SETUP_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	char err[512];
	int opt, rc, npass = 0, nwarn = 0, nfail = 0;
	cli_check_opts co = { .identity = 1, .port25 = 1, .dnsbl = EMV_PF_DNSBL_DEFAULT };
	emv_setup_opts eo;
	emv_pf_report r;
	emv_pool *pool = NULL;

	emv_setup_opts_default(&eo);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
		switch (opt) {
		case 5001: co.dnsbl = strcmp(optarg, "none") == 0 ? "" : optarg; continue;
		case 5002: co.port25 = 0; continue;
		case 'h': doctor_usage(stdout); return 0;
		default:
			rc = emv_setup_opt(&eo, opt, optarg);
			if (rc == 1)
				continue;
			if (rc == 0)
				doctor_usage(stderr);
			return 3;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "emailverify doctor: unexpected argument '%s'\n", argv[optind]);
		return 3;
	}
	emv_log_threshold = (emv_log_level)(EMV_LOG_WARN + (eo.verbose > 3 ? 3 : eo.verbose));
	if (eo.pool && !(pool = emv_pool_load(eo.pool, err, sizeof err))) {
		fprintf(stderr, "emailverify doctor: %s\n", err);
		return 3;
	}
	printf("emailverify doctor: can this machine verify email?\n");
	if (emv_setup_checks(&eo, pool, &co, &r, err, sizeof err) < 0) {
		fprintf(stderr, "emailverify doctor: %s\n", err);
		emv_pool_free(pool);
		return 2;
	}
	for (int i = 0; i < r.n; i++) {
		const emv_pf_check *c = &r.checks[i];
		printf("%s  %-7s %s\n", emv_pf_level_name(c->level), c->name, c->what);
		if (c->fix[0])
			printf("      %-7s fix: %s\n", "", c->fix);
		npass += c->level == EMV_PF_PASS;
		nwarn += c->level == EMV_PF_WARN;
		nfail += c->level == EMV_PF_FAIL;
	}
	if (pool && pool->nsources > 1)
		printf("(the identity checks were about the pool's first address; every address is audited "
		       "when a run starts)\n");
	printf("%d passed, %d warnings, %d failed: %s\n", npass, nwarn, nfail,
	       nfail   ? "this machine cannot verify correctly until the failures are fixed"
	       : nwarn ? "verdicts will work, but mail servers may distrust this machine"
		       : "ready to verify");
	emv_pool_free(pool);
	return nfail ? 2 : nwarn ? 1 : 0;
}
