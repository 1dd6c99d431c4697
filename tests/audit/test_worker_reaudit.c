/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_worker_reaudit.c - the periodic pool audit inside the cluster worker
 * (emv_worker_run, as emailverify-worker runs it) against the audit DNS
 * (argv[1]; argv[2] its unbound.conf for unbound-control) and an embedded
 * Kafka (librdkafka's mock cluster): with audit_interval = 1s, 127.0.0.61
 * is listed in flip.audit.test while the worker runs, then unlisted; the
 * worker is stopped as by SIGTERM.  Its stats must count the hold and the
 * release, and it must stop cleanly within its shutdown timeout with the
 * re-audit cancelled (the sanitizers watch the rest).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <pthread.h>
#include <unistd.h>
#include "emv_kafka.h"
#include "emv_util.h"
#include "emv_worker.h"

static const char *dns_server, *unbound_conf;
static char pool_path[512];

#define LISTING "61.0.0.127.flip.audit.test."

struct wrun {
	emv_worker_opts o;
	emv_setup_opts eo;
	volatile sig_atomic_t stop;
	emv_worker_stats st;
	char err[512];
	int rc;
};

static void control(const char *args)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "PATH=$PATH:/usr/sbin:/sbin unbound-control -c '%s' %s >/dev/null", unbound_conf,
		 args);
	if (system(cmd) != 0)
		fail_msg("unbound-control %s failed (control socket of the audit DNS up?)", args);
}

static void *worker_thread(void *arg)
{
	struct wrun *w = arg;
	w->rc = emv_worker_run(&w->o, &w->eo, &w->stop, &w->st, w->err, sizeof w->err);
	return NULL;
}

static void do_test_worker_holds_and_releases(void **state)
{
	/* the region's own topics (the mock has the shared ones) */
	static const char *const topics[] = { EMV_TOPIC_BATCHES ".audit", EMV_TOPIC_RETRY ".audit" };
	char err[256];
	emv_kafka_mock *mock = emv_kafka_mock_new(1, err, sizeof err);
	struct wrun w;
	pthread_t t;
	uint64_t t0;
	FILE *f;

	(void)state;
	if (!mock)
		fail_msg("mock Kafka: %s", err);
	for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
		if (emv_kafka_mock_topic(mock, topics[i], 4, err, sizeof err) != EMV_OK)
			fail_msg("mock topic %s: %s", topics[i], err);
	snprintf(pool_path, sizeof pool_path, "/tmp/emv-worker-reaudit-%d.conf", (int)getpid());
	f = fopen(pool_path, "w");
	assert_non_null(f);
	fputs("region = audit\nmail_from = probe@audit.test\n"
	      "source = 127.0.0.61 mail-a.audit.test\nsource = 127.0.0.66 out.audit.test\n"
	      "dnsbl = flip.audit.test\naudit_interval = 1s\n",
	      f);
	fclose(f);
	control("local_data_remove " LISTING);

	memset(&w, 0, sizeof w);
	emv_worker_opts_default(&w.o);
	emv_setup_opts_default(&w.eo);
	w.o.brokers = emv_kafka_mock_bootstraps(mock);
	w.o.name = "reaudit-test";
	w.o.shutdown_ms = 5000;
	w.eo.data_dir = EMV_SOURCE_DATA_DIR;
	w.eo.dns = dns_server;
	w.eo.pool = pool_path;
	w.eo.allow_private = 1;
	assert_int_equal(pthread_create(&t, NULL, worker_thread, &w), 0);

	sleep(3); /* set up, audited at start, re-audited */
	control("local_data '" LISTING " 60 IN A 127.0.0.2'");
	sleep(3);
	control("local_data_remove " LISTING);
	sleep(3);
	t0 = emv_now_ms();
	w.stop = 1; /* as SIGTERM does */
	pthread_join(t, NULL);
	unlink(pool_path);
	emv_kafka_mock_free(mock);

	if (w.rc != EMV_OK)
		fail_msg("the worker failed: %s", w.err);
	printf("worker: %llu re-audits, %llu held, %llu back in rotation; stopped in %llu ms\n",
	       (unsigned long long)w.st.audits, (unsigned long long)w.st.audit_held,
	       (unsigned long long)w.st.audit_released, (unsigned long long)(emv_now_ms() - t0));
	if (w.st.audit_held != 1 || w.st.audit_released != 1)
		fail_msg("want 127.0.0.61 held once and released once; stats say %llu and %llu",
			 (unsigned long long)w.st.audit_held, (unsigned long long)w.st.audit_released);
	assert_true(w.st.audits >= 4);
	assert_true(emv_now_ms() - t0 < 5000);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_worker_holds_and_releases),
	};
	if (argc < 3) {
		fprintf(stderr, "usage: test_worker_reaudit DNS_HOST:PORT UNBOUND_CONF\n");
		return 2;
	}
	dns_server = argv[1];
	unbound_conf = argv[2];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
