/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_check.c - `emailverify check ADDRESS...`: verify a few addresses now.
 *
 * Every address is parsed and flagged; valid ones are grouped by domain and
 * each domain gets one probe job (all domains run concurrently on one loop).
 * Verdicts are printed in the order given: a readable block per address, or
 * one JSON object per line with --json.
 */
#include <event2/event.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "emv_report.h"
#include "emv_util.h"

struct item {
	const char *input;
	emv_address addr;
	unsigned list_flags;
	char suggestion[EMV_ADDRESS_MAX + 1];
	emv_probe_job *job;
	size_t index;
};

struct domain_job {
	struct check *c;
	const char *domain;
	size_t *items; /* indexes into c->items */
	size_t n;
	emv_probe_job *job;
	int done;
};

struct check {
	struct item *items;
	size_t nitems;
	struct domain_job *djobs;
	size_t ndjobs;
	size_t remaining;
	int json;
	emv_setup *e;
};

static void print_item(struct check *c, struct item *it)
{
	emv_report_in in = {
		.input = it->input,
		.addr = &it->addr,
		.list_flags = it->list_flags,
		.did_you_mean = it->suggestion,
		.job = it->job,
		.index = it->index,
	};

	if (c->json) {
		char *s = emv_report_json_text(&in);
		puts(s);
		free(s);
		return;
	}
	emv_report_verdict v;
	const char *names[16];
	size_t nf;
	emv_report_verdict_of(&in, &v);
	printf("%s\n", it->addr.error == EMV_ADDR_OK ? it->addr.address : it->input);
	printf("  verdict   %s (%s)\n", emv_status_name(v.status), emv_reason_name(v.reason));
	if (v.detail[0])
		printf("  detail    %s\n", v.detail);
	nf = emv_flag_names(v.flags, names, 16);
	if (nf) {
		printf("  flags    ");
		for (size_t i = 0; i < nf; i++)
			printf(" %s", names[i]);
		printf("\n");
	}
	if (it->suggestion[0])
		printf("  did you mean %s?\n", it->suggestion);
	if (it->job) {
		const emv_probe_result *r = emv_probe_get(it->job, it->index);
		if (r->mx_host[0])
			printf("  mx        %s [%s] from %s%s%s, catch-all: %s\n", r->mx_host, r->mx_ip,
			       r->source_ip[0] ? r->source_ip : "?", r->tls[0] ? ", " : ", no TLS", r->tls,
			       r->catch_all < 0 ? "unknown"
			       : r->catch_all	? "yes"
						: "no");
		if (r->have_smtp)
			printf("  reply     %d %s\n", r->smtp_code, r->reply);
		printf("  attempts  %u in %u ms\n", r->attempts, r->duration_ms);
	}
	printf("\n");
}

static void on_domain_done(emv_probe_job *job, void *arg)
{
	struct domain_job *d = arg;
	d->done = 1;
	/* results are read while the job is alive: print everything at the
	 * end, in input order, so keep the job until then */
	d->c->remaining--;
	if (d->c->remaining == 0)
		event_base_loopbreak(d->c->e->base);
}

static void check_usage(FILE *f)
{
	fprintf(f, "usage: emailverify check [options] ADDRESS...\n\n"
		   "Verify each address against its domain's mail server and print the verdict\n"
		   "with the SMTP replies that decided it.  No mail is sent.\n\n"
		   "options:\n"
		   "  --json                 one JSON object per address and line\n" EMV_SETUP_HELP);
}

int cli_check(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		EMV_SETUP_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	emv_setup_opts eo;
	emv_setup e;
	struct check c;
	int opt, rc;

	memset(&c, 0, sizeof c);
	emv_setup_opts_default(&eo);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "jhv", longopts, NULL)) != -1) {
		if (opt == 'j') {
			c.json = 1;
			continue;
		}
		if (opt == 'h') {
			check_usage(stdout);
			return 0;
		}
		rc = emv_setup_opt(&eo, opt, optarg);
		if (rc == 1)
			continue;
		if (rc == 0)
			check_usage(stderr);
		return 2;
	}
	if (optind >= argc) {
		fprintf(stderr, "emailverify check: no address given\n");
		check_usage(stderr);
		return 2;
	}
	if (emv_setup_init(&e, &eo) < 0) {
		emv_setup_free(&e);
		return 1;
	}
	c.e = &e;
	c.nitems = (size_t)(argc - optind);
	c.items = emv_xcalloc(c.nitems, sizeof *c.items);
	c.djobs = emv_xcalloc(c.nitems, sizeof *c.djobs);

	/* parse, flag, group by domain */
	for (size_t i = 0; i < c.nitems; i++) {
		struct item *it = &c.items[i];
		size_t d;
		it->input = argv[optind + (int)i];
		if (emv_address_parse(it->input, strlen(it->input), &it->addr) != EMV_OK)
			continue;
		it->list_flags = emv_lists_flags(e.lists, it->addr.local, it->addr.domain);
		emv_lists_suggest(e.lists, it->addr.local, it->addr.domain, it->suggestion, sizeof it->suggestion);
		for (d = 0; d < c.ndjobs; d++)
			if (strcmp(c.djobs[d].domain, it->addr.domain) == 0)
				break;
		if (d == c.ndjobs) {
			c.djobs[d].c = &c;
			c.djobs[d].domain = it->addr.domain;
			c.djobs[d].items = emv_xcalloc(c.nitems, sizeof(size_t));
			c.ndjobs++;
		}
		/* the same address twice is asked once */
		size_t k;
		for (k = 0; k < c.djobs[d].n; k++)
			if (strcmp(c.items[c.djobs[d].items[k]].addr.address, it->addr.address) == 0)
				break;
		if (k == c.djobs[d].n)
			c.djobs[d].items[c.djobs[d].n++] = i;
	}
	c.remaining = c.ndjobs;
	for (size_t d = 0; d < c.ndjobs; d++) {
		struct domain_job *dj = &c.djobs[d];
		const char **addrs = emv_xcalloc(dj->n, sizeof *addrs);
		unsigned char *u8 = emv_xcalloc(dj->n, 1);
		for (size_t k = 0; k < dj->n; k++) {
			addrs[k] = c.items[dj->items[k]].addr.address;
			u8[k] = (c.items[dj->items[k]].addr.flags & EMV_FLAG_SMTPUTF8) != 0;
		}
		dj->job = emv_probe_start(&e.probe, dj->domain, addrs, u8, dj->n, on_domain_done, dj);
		free(addrs);
		free(u8);
	}
	if (c.remaining > 0)
		event_base_dispatch(e.base);

	/* attach each item to its job's result (duplicates share one) */
	for (size_t d = 0; d < c.ndjobs; d++) {
		struct domain_job *dj = &c.djobs[d];
		for (size_t k = 0; k < dj->n; k++) {
			const char *a = c.items[dj->items[k]].addr.address;
			for (size_t i = 0; i < c.nitems; i++)
				if (c.items[i].addr.error == EMV_ADDR_OK && strcmp(c.items[i].addr.address, a) == 0) {
					c.items[i].job = dj->job;
					c.items[i].index = k;
				}
		}
	}
	for (size_t i = 0; i < c.nitems; i++)
		print_item(&c, &c.items[i]);
	fflush(stdout);

	for (size_t d = 0; d < c.ndjobs; d++) {
		emv_probe_free(c.djobs[d].job);
		free(c.djobs[d].items);
	}
	free(c.djobs);
	free(c.items);
	emv_setup_free(&e);
	return 0;
}
