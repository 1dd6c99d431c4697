/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_deadline.h - a job's time limits in the cluster: the deadline and the
 * wait for stragglers (the cluster's side of verify's --deadline and
 * --straggler-wait, worker/emv_engine.h, with the same meaning).
 *
 * A job may have a deadline (jobs.deadline_at) and a straggler wait
 * (jobs.straggler_wait_s): once every address has had its first answer
 * (the sink counts them: jobs.n_answered, answered_at), the retries get at
 * most that much longer.  When the earlier of the two comes, every row of
 * the job without a final verdict is made final at once, in one
 * transaction (emv_deadline_expire): unknown, with its last temporary
 * result's reason and evidence (reply, codes, MX) and its detail saying
 * why it was not asked again; a row never answered is unknown / timeout,
 * "not asked: ...".  The job is done then, as when its last verdict comes
 * (the progress, the webhook, `run` exporting).
 *
 * A worker's result that comes after that changes nothing: the sink never
 * replaces a final verdict (emv_sink.h), so the job's verdicts are those it
 * had at its deadline, and its export, counts and webhook agree whenever
 * they are read.  The deadline also travels with every batch of the job
 * (VerifyBatch.deadline, unix ms): a worker drops a batch of the job taken
 * after it, and asks nothing again whose retry would come after it.
 *
 * Every results sink runs emv_deadline_expire about once a second: the
 * limits hold wherever the sink runs (run, serve, emailverify-coordinator
 * sink); several sinks at once are safe (the job is done once).
 *
 * Errors: EMV_OK / EMV_ERR with the step that failed in err.
 */
#ifndef EMV_DEADLINE_H
#define EMV_DEADLINE_H

#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>

/* Bounds of both limits (seconds): what a job may ask for. */
#define EMV_DEADLINE_MIN_S 1
#define EMV_DEADLINE_MAX_S (30 * 86400)

/* The limits of job_id: its deadline deadline_s seconds from now (0: none,
 * < 0: as it was; the job's clock is the database's), and its straggler
 * wait straggler_s (0: as long as the retries take, < 0: as it was).
 * Safe to repeat: a continued run sets them again. */
int emv_deadline_set(PGconn *c, const char *job_id, int64_t deadline_s, int64_t straggler_s, char *err, size_t errlen);

/* Make every job past a limit done (as said above); *jobs and *rows (may
 * be NULL) get how many jobs and rows were made final now. */
int emv_deadline_expire(PGconn *c, int *jobs, long long *rows, char *err, size_t errlen);

/* The ETA (seconds, -1 unknown) of a job not finished, the same in `run`
 * and the API: its `left` addresses without a final verdict at the rate
 * so far (per second), `waiting` of them for a retry not before the last
 * retry is due (retry_s from now, -1 unknown), and never later than its
 * time limit (limit_s from now, -1 none): then everything is final. */
double emv_deadline_eta(double left, double waiting, double rate, double retry_s, double limit_s);

/* The SQL of a jobs row's seconds until its first time limit ends it (NULL:
 * none): the deadline, or the straggler wait once every address had its
 * first answer. */
#define EMV_DEADLINE_LIMIT_SQL                                                             \
	"greatest(0, extract(epoch FROM least(deadline_at, CASE WHEN straggler_wait_s > 0" \
	" THEN answered_at + straggler_wait_s * interval '1 second' END) - now()))"

/* The deadline of job_id as unix ms (the database's clock), 0 when none. */
int emv_deadline_get(PGconn *c, const char *job_id, int64_t *unix_ms, char *err, size_t errlen);

#endif
