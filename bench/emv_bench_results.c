/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_bench_results.c - produce VerifyResults for a job's addresses 1..N
 * onto the results topic, as workers would (500 results per message, a mix
 * of verdicts with realistic evidence), for the sink benchmark.
 *
 *   emv-bench-results BROKERS JOB_ID N [PER_MESSAGE]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>
#include "emv_kafka.h"
#include "emv_util.h"
#include "emv_wire.h"

int main(int argc, char **argv)
{
	char errstr[512], err[EMV_WIRE_ERR_MAX];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	unsigned long long n, per;
	uint64_t t0 = emv_now_ms();

	if (argc < 4) {
		fprintf(stderr, "usage: emv-bench-results BROKERS JOB_ID N [PER_MESSAGE]\n");
		return 2;
	}
	n = strtoull(argv[3], NULL, 10);
	per = argc > 4 ? strtoull(argv[4], NULL, 10) : 500;
	if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr, sizeof errstr) ||
	    rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof errstr) ||
	    rd_kafka_conf_set(conf, "linger.ms", "20", errstr, sizeof errstr) ||
	    rd_kafka_conf_set(conf, "message.max.bytes", "4194304", errstr, sizeof errstr) ||
	    !(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr))) {
		fprintf(stderr, "emv-bench-results: %s\n", errstr);
		return 1;
	}
	if (emv_kafka_ensure_topic(rk, EMV_TOPIC_RESULTS, EMV_TOPIC_PARTITIONS, err, sizeof err) != EMV_OK) {
		fprintf(stderr, "emv-bench-results: %s\n", err);
		return 1;
	}
	emv_wire_result *res = emv_xcalloc(per, sizeof *res);
	for (unsigned long long first = 1, b = 0; first <= n; first += per, b++) {
		emv_wire_results r;
		uint8_t *buf;
		size_t len, k = 0;
		memset(&r, 0, sizeof r);
		emv_strlcpy(r.job_id, argv[2], sizeof r.job_id);
		snprintf(r.batch_id, sizeof r.batch_id, "bench-%llu", b);
		emv_strlcpy(r.worker, "bench", sizeof r.worker);
		for (unsigned long long id = first; id <= n && k < per; id++, k++) {
			emv_wire_result *x = &res[k];
			memset(x, 0, sizeof *x);
			x->id = id;
			switch (id % 10) {
			case 0:
			case 1:
			case 2:
			case 3:
			case 4:
			case 5:
				x->status = EMV_STATUS_DELIVERABLE;
				x->reason = EMV_REASON_ACCEPTED;
				x->smtp_code = 250;
				strcpy(x->enhanced_code, "2.1.5");
				x->reply = (char *)"2.1.5 Ok";
				break;
			case 6:
			case 7:
				x->status = EMV_STATUS_UNDELIVERABLE;
				x->reason = EMV_REASON_MAILBOX_NOT_FOUND;
				x->smtp_code = 550;
				strcpy(x->enhanced_code, "5.1.1");
				x->reply =
					(char *)"5.1.1 <u@d.bench>: Recipient address rejected: User unknown in virtual mailbox table";
				break;
			case 8:
				x->status = EMV_STATUS_RISKY;
				x->reason = EMV_REASON_CATCH_ALL;
				x->catch_all = 1;
				x->smtp_code = 250;
				strcpy(x->enhanced_code, "2.1.5");
				x->reply = (char *)"2.1.5 Ok";
				break;
			default:
				x->status = EMV_STATUS_UNKNOWN;
				x->reason = EMV_REASON_GREYLISTED;
				x->smtp_code = 451;
				strcpy(x->enhanced_code, "4.7.1");
				x->reply = (char *)"4.7.1 Greylisted, please try again in 300 seconds";
			}
			x->attempts = 1;
			x->duration_ms = 120;
			strcpy(x->mx_host, "mx1.d.bench");
			strcpy(x->mx_ip, "127.0.1.1");
			strcpy(x->source_ip, "127.0.0.1");
			strcpy(x->tls, "TLSv1.3");
		}
		r.results = res;
		r.n_results = k;
		if (emv_wire_results_encode(&r, &buf, &len, err, sizeof err) != EMV_WIRE_OK) {
			fprintf(stderr, "emv-bench-results: %s\n", err);
			return 1;
		}
		while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(EMV_TOPIC_RESULTS),
					 RD_KAFKA_V_KEY(argv[2], strlen(argv[2])), RD_KAFKA_V_VALUE(buf, len),
					 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
					 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(rk, 50);
		rd_kafka_poll(rk, 0);
	}
	if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "emv-bench-results: flush timed out\n");
		return 1;
	}
	fprintf(stderr, "produced %llu results in %.2f s\n", n, (double)(emv_now_ms() - t0) / 1000.0);
	free(res);
	rd_kafka_destroy(rk);
	return 0;
}
