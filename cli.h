/* What both command-line programs (./run, ./train) share: the one-line error exit and strict
   parsing of numbers (the whole string, in range, finite) and of named choices. */
#ifndef CLI_H
#define CLI_H

/* "error: <message>" on stderr, control characters replaced so it stays one line; exit status 1 */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
long parse_int(const char *flag, const char *s, long lo, long hi);
double parse_num(const char *flag, const char *s, double lo, double hi);
/* the index of s in choices (NULL-terminated) */
int parse_choice(const char *flag, const char *s, const char *const *choices);
double now_s(void);   /* monotonic seconds */

#endif
