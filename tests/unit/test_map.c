/* SPDX-License-Identifier: Apache-2.0 */
/* test_map.c - the one string hash map: get/set/slot/remove/iterate, growth,
 * removal inside collision runs, checked against a plain array model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "emv_map.h"

static void do_test_basics(void **state)
{
	emv_map *m = emv_map_new(0);
	int added = -1, x = 1, y = 2;
	void **v;
	(void)state;
	assert_null(emv_map_get(m, "a"));
	assert_false(emv_map_has(m, "a"));
	assert_null(emv_map_set(m, "a", &x));
	assert_ptr_equal(emv_map_get(m, "a"), &x);
	assert_ptr_equal(emv_map_set(m, "a", &y), &x); /* replaced: the old value back */
	assert_int_equal(emv_map_count(m), 1);
	v = emv_map_slot(m, "b", &added);
	assert_int_equal(added, 1);
	assert_null(*v);
	*v = &x;
	v = emv_map_slot(m, "b", &added);
	assert_int_equal(added, 0);
	assert_ptr_equal(*v, &x);
	/* a NULL value is still an entry */
	emv_map_set(m, "", NULL);
	assert_true(emv_map_has(m, ""));
	assert_int_equal(emv_map_count(m), 3);
	/* keys are copied */
	{
		char k[8] = "key";
		emv_map_set(m, k, &y);
		strcpy(k, "zzz");
		assert_ptr_equal(emv_map_get(m, "key"), &y);
		assert_null(emv_map_get(m, "zzz"));
	}
	assert_ptr_equal(emv_map_remove(m, "a"), &y);
	assert_null(emv_map_remove(m, "a"));
	assert_int_equal(emv_map_count(m), 3);
	emv_map_free(m, NULL);
	assert_int_equal(emv_map_count(NULL), 0);
}

#define N 5000

/* Random operations on a few thousand keys (so runs collide, the table
 * grows and removals shift runs), checked against an array after each. */
static void do_test_against_model(void **state)
{
	static char keys[N][16];
	static intptr_t model[N]; /* 0: absent, else the value */
	emv_map *m = emv_map_new(0);
	size_t count = 0;
	unsigned seed = 12345;
	(void)state;
	for (int i = 0; i < N; i++)
		snprintf(keys[i], sizeof keys[i], "k%d.test", i);
	for (int step = 0; step < 200000; step++) {
		int k, op;
		seed = seed * 1103515245u + 12345u;
		k = (int)((seed >> 8) % N);
		op = (int)((seed >> 4) % 3);
		if (op < 2) {
			intptr_t val = step + 1;
			void *old = emv_map_set(m, keys[k], (void *)val);
			if ((intptr_t)old != model[k])
				fail_msg("step %d: set %s returned %ld, model %ld", step, keys[k], (long)(intptr_t)old,
					 (long)model[k]);
			count += model[k] == 0;
			model[k] = val;
		} else {
			void *old = emv_map_remove(m, keys[k]);
			if ((intptr_t)old != model[k])
				fail_msg("step %d: remove %s returned %ld, model %ld", step, keys[k],
					 (long)(intptr_t)old, (long)model[k]);
			count -= model[k] != 0;
			model[k] = 0;
		}
		assert_int_equal(emv_map_count(m), count);
		if (step % 20000 == 0)
			for (int i = 0; i < N; i++)
				if ((intptr_t)emv_map_get(m, keys[i]) != model[i])
					fail_msg("step %d: %s is %ld, model %ld", step, keys[i],
						 (long)(intptr_t)emv_map_get(m, keys[i]), (long)model[i]);
	}
	for (int i = 0; i < N; i++)
		assert_true((intptr_t)emv_map_get(m, keys[i]) == model[i]);
	/* iteration sees every entry once */
	{
		size_t it = 0, seen = 0;
		const char *key;
		void *value;
		while (emv_map_next(m, &it, &key, &value)) {
			int i = atoi(key + 1);
			assert_true((intptr_t)value == model[i]);
			seen++;
		}
		assert_int_equal(seen, count);
	}
	emv_map_free(m, NULL);
}

static int freed;
static void count_free(void *p)
{
	freed++;
	free(p);
}

static void do_test_free_values(void **state)
{
	emv_map *m = emv_map_new(100);
	char k[16];
	(void)state;
	for (int i = 0; i < 100; i++) {
		snprintf(k, sizeof k, "%d", i);
		emv_map_set(m, k, malloc(4));
	}
	freed = 0;
	emv_map_free(m, count_free);
	assert_int_equal(freed, 100);
	/* the shared hash is FNV-1a */
	assert_int_equal(emv_map_hash("", 0), 2166136261u);
	assert_int_equal(emv_map_hash("a", 1), 0xe40c292cu);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_basics),
		cmocka_unit_test(do_test_against_model),
		cmocka_unit_test(do_test_free_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
