/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_policy.h - the verdict policy: how the engine's evidence (status,
 * reason, flags) maps to the status a user reads and to safe_to_send.
 *
 * The engine's verdict never changes; a policy only maps it, at output
 * time (verify's output, the export, the API), and the output names the
 * policy that produced it.  A policy is a short ordered table, first match
 * wins (docs/policy.md):
 *
 *   # reason      flag   status        ->  status        reason   safe
 *   accepted      role   deliverable       risky         role     no
 *   *             *      deliverable       deliverable   =        yes
 *   *             *      *                 =             =        no
 *
 * The first three columns match the engine's verdict (a reason name or *,
 * a flag name or *, a status name or *); the last three say what is
 * written: the status (= keeps the engine's), the reason (= keeps it) and
 * safe_to_send (yes/no).  A verdict no row matches keeps its status and is
 * safe to send only when deliverable.
 *
 * Two presets are built in: "marketing" (the default: role, catch-all,
 * disposable and full mailboxes are risky, not safe to send) and
 * "transactional" (the same, but a role address whose server accepted it
 * is deliverable: a sign-up from sales@ is a real customer).
 */
#ifndef EMV_POLICY_H
#define EMV_POLICY_H

#include <stddef.h>
#include "emv_result.h"

#define EMV_POLICY_DEFAULT "marketing"
#define EMV_POLICY_NAME_MAX 64 /* a preset's name, or a file's base name */
#define EMV_POLICY_RULES_MAX 64
#define EMV_POLICY_TEXT_MAX 8192 /* a policy file's size */

typedef struct emv_policy emv_policy;

/* A built-in preset by name; NULL when there is none. */
const emv_policy *emv_policy_preset(const char *name);

/* The names of the presets, NULL-terminated. */
const char *const *emv_policy_preset_names(void);

/* A policy from text (name is what outputs will call it); NULL with a
 * message naming the line and the column when the text is not a policy. */
emv_policy *emv_policy_parse(const char *name, const char *text, char *err, size_t errlen);

/* A preset's name or a policy file's path: the preset, or the file parsed
 * (named after its base name, without .policy/.conf).  Presets are never
 * freed; emv_policy_free() ignores them. */
const emv_policy *emv_policy_get(const char *name_or_file, char *err, size_t errlen);
void emv_policy_free(const emv_policy *p);

const char *emv_policy_name(const emv_policy *p);

/* The policy's table as text (the same format emv_policy_parse reads). */
size_t emv_policy_text(const emv_policy *p, char *buf, size_t len);

/* Map one verdict: *status and *reason in (the engine's), out (the
 * user's); returns safe_to_send (1/0).  p NULL: the default preset. */
int emv_policy_apply(const emv_policy *p, emv_status *status, emv_reason *reason, unsigned flags);

#endif
