// SPDX-License-Identifier: GPL-2.0
/*
 * kstackwatch: parse the watch string written to /proc/kstackwatch.
 *
 * Two grammars are accepted.  A string containing '=' is the key=value
 * form of the later upstream versions:
 *
 *   fn=NAME fo=OFF [dp=N] [mw=N] [so=OFF] [wl=LEN] [ac=0|1] [ph=0|1]
 *
 * (long keys func_name, func_offset, depth, max_watch, sp_offset,
 * watch_len, auto_canary, panic_hit).  Anything else is the original
 * positional form:
 *
 *   NAME+OFF[+DEPTH] [SP_OFFSET:LEN]
 *
 * where a missing SP_OFFSET:LEN part means "watch the canary".  Numbers
 * are decimal, 0x hex or 0 octal.  Unlike upstream every problem is an
 * error: the parser fills a private struct and the caller applies it only
 * on success, so a bad string never half-applies.  Each error prints one
 * line naming the problem.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ctype.h>
#include <linux/kernel.h>
#include <linux/string.h>
#include <linux/thread_info.h>

#include "ksw.h"

enum ksw_key {
	KSW_KEY_FN,
	KSW_KEY_FO,
	KSW_KEY_DP,
	KSW_KEY_MW,
	KSW_KEY_SO,
	KSW_KEY_WL,
	KSW_KEY_AC,
	KSW_KEY_PH,
	KSW_NR_KEYS,
};

static const char * const ksw_long_keys[KSW_NR_KEYS] = {
	"func_name", "func_offset", "depth", "max_watch",
	"sp_offset", "watch_len", "auto_canary", "panic_hit",
};

static const char * const ksw_short_keys[KSW_NR_KEYS] = {
	"fn", "fo", "dp", "mw", "so", "wl", "ac", "ph",
};

#define KSW_SEPARATORS " \t\n"

static int ksw_parse_u16(const char *what, const char *val, u16 *out)
{
	int ret;

	if (!*val) {
		pr_err("empty value for %s\n", what);
		return -EINVAL;
	}
	/* kstrtou16 would take a leading '+' */
	if (!isdigit(*val)) {
		pr_err("bad number for %s: '%s'\n", what, val);
		return -EINVAL;
	}
	ret = kstrtou16(val, 0, out);
	if (ret == -ERANGE)
		pr_err("%s out of range: '%s'\n", what, val);
	else if (ret)
		pr_err("bad number for %s: '%s'\n", what, val);
	return ret;
}

static int ksw_parse_bool(const char *what, const char *val, bool *out)
{
	u16 v;
	int ret;

	ret = ksw_parse_u16(what, val, &v);
	if (ret)
		return ret;
	if (v > 1) {
		pr_err("%s must be 0 or 1, not %u\n", what, v);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int ksw_parse_name(const char *val, struct ksw_config *cfg)
{
	const char *c;

	if (!*val) {
		pr_err("empty function name\n");
		return -EINVAL;
	}
	if (strlen(val) >= sizeof(cfg->func_name)) {
		pr_err("function name longer than %zu bytes\n",
		       sizeof(cfg->func_name) - 1);
		return -ENAMETOOLONG;
	}
	for (c = val; *c; c++) {
		if (!isalnum(*c) && *c != '_' && *c != '.') {
			pr_err("bad character in function name '%s'\n", val);
			return -EINVAL;
		}
	}
	strscpy(cfg->func_name, val, sizeof(cfg->func_name));
	return 0;
}

static int ksw_find_key(const char *key)
{
	int i;

	for (i = 0; i < KSW_NR_KEYS; i++) {
		if (!strcmp(key, ksw_long_keys[i]) ||
		    !strcmp(key, ksw_short_keys[i]))
			return i;
	}
	return -1;
}

static int ksw_set_key(int key, const char *val, struct ksw_config *cfg)
{
	const char *name = ksw_long_keys[key];

	switch (key) {
	case KSW_KEY_FN:
		return ksw_parse_name(val, cfg);
	case KSW_KEY_FO:
		return ksw_parse_u16(name, val, &cfg->func_offset);
	case KSW_KEY_DP:
		return ksw_parse_u16(name, val, &cfg->depth);
	case KSW_KEY_MW:
		return ksw_parse_u16(name, val, &cfg->max_watch);
	case KSW_KEY_SO:
		return ksw_parse_u16(name, val, &cfg->sp_offset);
	case KSW_KEY_WL:
		return ksw_parse_u16(name, val, &cfg->watch_len);
	case KSW_KEY_AC:
		return ksw_parse_bool(name, val, &cfg->canary);
	case KSW_KEY_PH:
		return ksw_parse_bool(name, val, &cfg->panic_hit);
	}
	return -EINVAL;
}

static int ksw_parse_keyvalue(char *s, struct ksw_config *cfg, bool *seen)
{
	char *tok, *val;
	int key, ret;

	while ((tok = strsep(&s, KSW_SEPARATORS))) {
		if (!*tok)
			continue;
		val = strchr(tok, '=');
		if (!val) {
			pr_err("'%s' is not key=value\n", tok);
			return -EINVAL;
		}
		*val++ = '\0';
		key = ksw_find_key(tok);
		if (key < 0) {
			pr_err("unknown key '%s'\n", tok);
			return -EINVAL;
		}
		if (seen[key]) {
			pr_err("key %s given twice\n", ksw_long_keys[key]);
			return -EINVAL;
		}
		seen[key] = true;
		ret = ksw_set_key(key, val, cfg);
		if (ret)
			return ret;
	}
	if (!seen[KSW_KEY_FN]) {
		pr_err("missing func_name\n");
		return -EINVAL;
	}
	return 0;
}

/* NAME+OFF[+DEPTH] */
static int ksw_parse_func_part(char *s, struct ksw_config *cfg)
{
	char *name, *off, *depth;
	int ret;

	name = strsep(&s, "+");
	off = strsep(&s, "+");
	depth = strsep(&s, "+");
	if (s) {
		pr_err("too many '+' fields in '%s'\n", cfg->raw);
		return -EINVAL;
	}
	ret = ksw_parse_name(name, cfg);
	if (ret)
		return ret;
	if (!off) {
		pr_err("missing +offset after function name\n");
		return -EINVAL;
	}
	ret = ksw_parse_u16("func_offset", off, &cfg->func_offset);
	if (ret)
		return ret;
	if (depth)
		return ksw_parse_u16("depth", depth, &cfg->depth);
	return 0;
}

/* SP_OFFSET:LEN */
static int ksw_parse_local_part(char *s, struct ksw_config *cfg)
{
	char *so = strsep(&s, ":");
	int ret;

	if (!s) {
		pr_err("local part '%s' is not sp_offset:len\n", so);
		return -EINVAL;
	}
	ret = ksw_parse_u16("sp_offset", so, &cfg->sp_offset);
	if (ret)
		return ret;
	return ksw_parse_u16("watch_len", s, &cfg->watch_len);
}

static int ksw_parse_positional(char *s, struct ksw_config *cfg, bool *seen)
{
	char *func = NULL, *local = NULL, *tok;
	int ret;

	while ((tok = strsep(&s, KSW_SEPARATORS))) {
		if (!*tok)
			continue;
		if (!func) {
			func = tok;
		} else if (!local) {
			local = tok;
		} else {
			pr_err("too many fields: '%s'\n", tok);
			return -EINVAL;
		}
	}
	if (!func) {
		pr_err("empty config\n");
		return -EINVAL;
	}
	ret = ksw_parse_func_part(func, cfg);
	if (ret)
		return ret;
	if (!local) {
		cfg->canary = true;
		return 0;
	}
	seen[KSW_KEY_SO] = true;
	seen[KSW_KEY_WL] = true;
	return ksw_parse_local_part(local, cfg);
}

static int ksw_config_check(struct ksw_config *cfg, const bool *seen)
{
	if (cfg->canary) {
		if (seen[KSW_KEY_SO] || seen[KSW_KEY_WL]) {
			pr_err("auto_canary excludes sp_offset and watch_len\n");
			return -EINVAL;
		}
		if (!IS_ENABLED(CONFIG_STACKPROTECTOR)) {
			pr_err("no canary without CONFIG_STACKPROTECTOR\n");
			return -EOPNOTSUPP;
		}
		cfg->watch_len = sizeof(unsigned long);
		cfg->sp_offset = 0;
	} else if (!seen[KSW_KEY_WL]) {
		cfg->watch_len = sizeof(unsigned long);
	}
	if (cfg->watch_len != 1 && cfg->watch_len != 2 &&
	    cfg->watch_len != 4 && cfg->watch_len != 8) {
		pr_err("watch_len %u is not 1, 2, 4 or 8\n", cfg->watch_len);
		return -EINVAL;
	}
	if (cfg->sp_offset >= THREAD_SIZE) {
		pr_err("sp_offset %u is beyond the stack (%lu bytes)\n",
		       cfg->sp_offset, THREAD_SIZE);
		return -ERANGE;
	}
	if (cfg->sp_offset % cfg->watch_len) {
		pr_err("sp_offset %u is not aligned to watch_len %u\n",
		       cfg->sp_offset, cfg->watch_len);
		return -EINVAL;
	}
	if (cfg->max_watch > KSW_MAX_WATCH) {
		pr_err("max_watch %u exceeds the %d hardware breakpoints\n",
		       cfg->max_watch, KSW_MAX_WATCH);
		return -ERANGE;
	}
	return 0;
}

/**
 * ksw_config_parse() - parse a watch string
 * @buf: the string, NUL-terminated, without surrounding whitespace
 * @cfg: filled on success; garbage on failure
 *
 * Return: 0, or a negative errno after one pr_err line naming the problem.
 */
int ksw_config_parse(const char *buf, struct ksw_config *cfg)
{
	bool seen[KSW_NR_KEYS] = { };
	char copy[KSW_CONFIG_MAX];
	int ret;

	memset(cfg, 0, sizeof(*cfg));
	if (strscpy(cfg->raw, buf, sizeof(cfg->raw)) < 0) {
		pr_err("config longer than %zu bytes\n", sizeof(cfg->raw) - 1);
		return -E2BIG;
	}
	strscpy(copy, buf, sizeof(copy));
	if (strchr(copy, '='))
		ret = ksw_parse_keyvalue(copy, cfg, seen);
	else
		ret = ksw_parse_positional(copy, cfg, seen);
	if (ret)
		return ret;
	return ksw_config_check(cfg, seen);
}
