/* SPDX-License-Identifier: Apache-2.0 */
/*
 * split_kafka.c - `emailverify-coordinator ingest` then `split` against a
 * real PostgreSQL and a real Kafka broker (ctest fixtures "pg", "kafka").
 *
 * Every pending address must be in exactly one VerifyBatch on the batches
 * topic; a hot domain is cut into batches of at most --batch-max with keys
 * domain, domain#1, ... bounded by the shard count; duplicates and
 * unusable rows are not batched; a second split of the same job adds
 * nothing (the cursor is at the end); the job is "running".
 */
#include <signal.h>
#include <fcntl.h>
#include "cluster_harness.h"
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include "emv_wire.h"

static char pg_url[512], brokers[256];


static int run(char *out, size_t outlen, const char *a0, ...)
{
	const char *argv[16];
	int argc = 0;
	va_list ap;
	argv[argc++] = a0;
	va_start(ap, a0);
	for (const char *a; (a = va_arg(ap, const char *)) && argc < 15;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return run_capture(out, outlen, argv, 1);
}

struct seen {
	unsigned char *ids; /* times each address id was batched */
	size_t max_id;
	int batches, hot_keys[8], max_batch;
	char job[64];
};

/* Read every message of the topic from the beginning. */
static void consume_all(struct seen *s)
{
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_partition_list_t *parts;
	int eofs = 0, nparts;
	unsigned char at_end[256] = { 0 };

	rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr);
	rd_kafka_conf_set(conf, "group.id", "split-test", errstr, sizeof errstr);
	rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof errstr);
	rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
	assert_non_null(rk);
	{
		rd_kafka_topic_t *t = rd_kafka_topic_new(rk, "emailverify.batches", NULL);
		assert_int_equal(rd_kafka_metadata(rk, 0, t, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
		nparts = md->topics[0].partition_cnt;
		rd_kafka_metadata_destroy(md);
		rd_kafka_topic_destroy(t);
	}
	parts = rd_kafka_topic_partition_list_new(nparts);
	for (int p = 0; p < nparts; p++)
		rd_kafka_topic_partition_list_add(parts, "emailverify.batches", p)->offset = RD_KAFKA_OFFSET_BEGINNING;
	assert_int_equal(rd_kafka_assign(rk, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(parts);
	for (int idle = 0; eofs < nparts && idle < 100;) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
		emv_wire_batch *b;
		char err[EMV_WIRE_ERR_MAX];
		if (!m) {
			idle++;
			continue;
		}
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			/* per partition: other tests may append to the topic, and
			 * a partition can reach its end more than once */
			if (m->partition >= 0 && m->partition < 256 && !at_end[m->partition]) {
				at_end[m->partition] = 1;
				eofs++;
			}
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->partition >= 0 && m->partition < 256 && at_end[m->partition]) {
			at_end[m->partition] = 0;
			eofs--;
		}
		assert_int_equal(m->err, 0);
		if (emv_wire_batch_decode(m->payload, m->len, &b, err, sizeof err) != EMV_WIRE_OK)
			fail_msg("undecodable batch: %s", err);
		if (strcmp(b->job_id, s->job) == 0) {
			char key[300];
			snprintf(key, sizeof key, "%.*s", (int)m->key_len, (const char *)m->key);
			s->batches++;
			if ((int)b->n_addresses > s->max_batch)
				s->max_batch = (int)b->n_addresses;
			if (strcmp(b->domain, "hot.test") == 0) {
				int k = strcmp(key, "hot.test") == 0
						? 0
						: (strncmp(key, "hot.test#", 9) == 0 ? atoi(key + 9) : 7);
				assert_true(k >= 0 && k < 8);
				s->hot_keys[k]++;
			} else {
				assert_string_equal(key, b->domain); /* small domains: key = domain */
			}
			for (size_t i = 0; i < b->n_addresses; i++) {
				assert_true(b->addresses[i].id <= s->max_id);
				s->ids[b->addresses[i].id]++;
			}
		}
		emv_wire_batch_free(b);
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
}

static void do_test_ingest_and_split(void **state)
{
	char out[4096], *id;
	const char *list = EMV_CLUSTER_RUN "/split.csv";
	FILE *f = fopen(list, "w");
	struct seen s;
	size_t rows = 0;

	assert_non_null(f);
	fputs("email\n", f);
	for (int i = 1; i <= 1700; i++, rows++)
		fprintf(f, "u%d@hot.test\n", i); /* rows 1..1700 */
	for (int i = 1; i <= 30; i++, rows++)
		fprintf(f, "u%d@small.test\n", i); /* rows 1701..1730 */
	fputs("u5@hot.test\nnot an address\n", f); /* 1731: duplicate, 1732: invalid */
	rows += 2;
	fclose(f);

	assert_int_equal(run(out, sizeof out, EMV_COORDINATOR, "ingest", "--database", pg_url, list, NULL), 0);
	assert_non_null(strstr(out, "1732 rows (1730 unique addresses, 1 duplicates, 1 invalid"));
	id = strstr(out, "job ");
	assert_non_null(id);
	id += 4;
	id[strcspn(id, ":")] = '\0';
	memset(&s, 0, sizeof s);
	snprintf(s.job, sizeof s.job, "%s", id);

	assert_int_equal(run(out, sizeof out, EMV_COORDINATOR, "split", "--database", pg_url, "--brokers", brokers,
			     "--batch-max", "500", s.job, NULL),
			 0);
	assert_non_null(strstr(out, "1730 addresses in 5 batches"));
	/* splitting again adds nothing: the job's cursor is at its end */
	assert_int_equal(run(out, sizeof out, EMV_COORDINATOR, "split", "--database", pg_url, "--brokers", brokers,
			     "--batch-max", "500", s.job, NULL),
			 0);
	assert_non_null(strstr(out, "0 addresses in 0 batches"));

	s.max_id = rows;
	s.ids = calloc(rows + 1, 1);
	consume_all(&s);
	assert_int_equal(s.batches, 5); /* hot: 500+500+500+200, small: 30 */
	assert_int_equal(s.max_batch, 500);
	assert_int_equal(s.hot_keys[0], 1); /* hot.test, hot.test#1 .. #3 */
	assert_int_equal(s.hot_keys[1], 1);
	assert_int_equal(s.hot_keys[2], 1);
	assert_int_equal(s.hot_keys[3], 1);
	for (size_t i = 1; i <= 1730; i++)
		if (s.ids[i] != 1)
			fail_msg("address id %zu batched %d times", i, s.ids[i]);
	assert_int_equal(s.ids[1731], 0); /* the duplicate rides on row 5 */
	assert_int_equal(s.ids[1732], 0); /* the invalid row is final already */
	free(s.ids);
}

/* The coordinator is killed in the middle of a split and started again:
 * it resumes after the last chunk it recorded; every address is batched,
 * and only the chunk in flight at the kill can be batched twice. */
static void do_test_split_resumes_after_kill(void **state)
{
	char out[4096], *id;
	const char *list = EMV_CLUSTER_RUN "/split-kill.csv";
	FILE *f = fopen(list, "w");
	struct seen s;
	const size_t rows = 300000;
	size_t twice = 0;
	pid_t pid;
	int status;

	fputs("email\n", f);
	for (size_t i = 1; i <= rows; i++)
		fprintf(f, "u%zu@d%zu.test\n", i, i % 3000);
	fclose(f);
	assert_int_equal(run(out, sizeof out, EMV_COORDINATOR, "ingest", "--database", pg_url, list, NULL), 0);
	id = strstr(out, "job ");
	assert_non_null(id);
	id += 4;
	id[strcspn(id, ":")] = '\0';
	memset(&s, 0, sizeof s);
	snprintf(s.job, sizeof s.job, "%s", id);

	pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1);
		dup2(devnull, 2);
		execl(EMV_COORDINATOR, EMV_COORDINATOR, "split", "--database", pg_url, "--brokers", brokers, s.job,
		      (char *)NULL);
		_exit(127);
	}
	{
		/* killed right after its first recorded chunk, while it runs */
		PGconn *c = PQconnectdb(pg_url);
		char sql[256];
		snprintf(sql, sizeof sql, "SELECT split_done FROM jobs WHERE id = '%s'", s.job);
		for (int i = 0; i < 3000; i++) {
			PGresult *r = PQexec(c, sql);
			long done = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : 0;
			PQclear(r);
			if (done > 0)
				break;
			usleep(5000);
		}
		PQfinish(c);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	assert_true(WIFSIGNALED(status)); /* it really was interrupted */
	assert_int_equal(run(out, sizeof out, EMV_COORDINATOR, "split", "--database", pg_url, "--brokers", brokers,
			     s.job, NULL),
			 0);

	s.max_id = rows;
	s.ids = calloc(rows + 1, 1);
	consume_all(&s);
	for (size_t i = 1; i <= rows; i++) {
		if (s.ids[i] == 0)
			fail_msg("address id %zu never batched", i);
		if (s.ids[i] > 2)
			fail_msg("address id %zu batched %d times", i, s.ids[i]);
		twice += s.ids[i] == 2;
	}
	print_message("split killed and resumed: %zu of %zu addresses batched twice\n", twice, rows);
	assert_true(twice <= 100000 + 500); /* at most the chunk in flight */
	free(s.ids);
}

/* Production Kafka settings pass through to librdkafka, and a bad one is
 * named rather than ignored (a misspelt TLS option must not silently mean
 * plain text). */
static void do_test_kafka_settings(void **state)
{
	char out[4096];
	const char *conf = EMV_CLUSTER_RUN "/kafka-test.properties";
	FILE *f = fopen(conf, "w");
	fputs("# comment\n\nclient.id = emv-split-test\nsocket.timeout.ms=10000\nnot a setting\n", f);
	fclose(f);
	assert_int_equal(run(out, sizeof out, EMV_COORDINATOR, "split", "--database", pg_url, "--brokers", brokers,
			     "--kafka", "no.such.property=1", "nojob", NULL),
			 1);
	assert_non_null(strstr(out, "no.such.property"));
	assert_int_equal(run(out, sizeof out, EMV_COORDINATOR, "sink", "--database", pg_url, "--brokers", brokers,
			     "--kafka-config", conf, NULL),
			 2);
	assert_non_null(strstr(out, "kafka-test.properties:5: expected key=value"));
	f = fopen(conf, "w");
	fputs("security.protocol=plaintext\nclient.id=emv-sink-test\n", f);
	fclose(f);
	assert_int_equal(run(out, sizeof out, EMV_COORDINATOR, "sink", "--database", pg_url, "--brokers", brokers,
			     "--kafka-config", conf, "--until-idle", "500", "--group", "settings-test", NULL),
			 0);
}

/* Whether the cluster has `topic`, from the metadata of all topics (asking
 * for the one topic could create it where the broker auto-creates). */
static int topic_exists(const char *topic)
{
	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	const struct rd_kafka_metadata *md;
	int found = 0;

	rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	assert_non_null(rk);
	assert_int_equal(rd_kafka_metadata(rk, 1, NULL, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
	for (int i = 0; i < md->topic_cnt; i++)
		found |= strcmp(md->topics[i].topic, topic) == 0 && md->topics[i].partition_cnt > 0;
	rd_kafka_metadata_destroy(md);
	rd_kafka_destroy(rk);
	return found;
}

/* The split makes the results topic too (workers may deliver before the
 * sink ever ran): the one configured, not emailverify.results whatever the
 * configuration says. */
static void do_test_split_follows_configured_topics(void **state)
{
	char out[4096], *id, batches[64], results[64];
	const char *list = EMV_CLUSTER_RUN "/split-topics.csv";
	FILE *f = fopen(list, "w");

	assert_non_null(f);
	fputs("email\nt1@topics.test\nt2@topics.test\n", f);
	fclose(f);
	snprintf(batches, sizeof batches, "test.batches-%d", (int)getpid());
	snprintf(results, sizeof results, "test.results-%d", (int)getpid());
	assert_false(topic_exists(results));
	assert_int_equal(run(out, sizeof out, EMV_COORDINATOR, "ingest", "--database", pg_url, list, NULL), 0);
	id = strstr(out, "job ");
	assert_non_null(id);
	id += 4;
	id[strcspn(id, ":")] = '\0';
	assert_int_equal(run(out, sizeof out, EMV_COORDINATOR, "split", "--database", pg_url, "--brokers", brokers,
			     "--topic", batches, "--results-topic", results, id, NULL),
			 0);
	assert_non_null(strstr(out, "2 addresses in 1 batches"));
	if (!topic_exists(batches) || !topic_exists(results))
		fail_msg("split with --topic %s --results-topic %s: topics %s %s, %s %s", batches, results, batches,
			 topic_exists(batches) ? "made" : "missing", results,
			 topic_exists(results) ? "made" : "missing");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_ingest_and_split),
		cmocka_unit_test(do_test_split_resumes_after_kill),
		cmocka_unit_test(do_test_kafka_settings),
		cmocka_unit_test(do_test_split_follows_configured_topics),
	};
	env_value(EMV_CLUSTER_RUN "/pg-run/pg.env", "EMV_PG_URL", pg_url, sizeof pg_url);
	env_value(EMV_CLUSTER_RUN "/kafka-run/kafka.env", "EMV_KAFKA_BROKERS", brokers, sizeof brokers);
	return cmocka_run_group_tests_name("split_kafka", tests, NULL, NULL);
}
