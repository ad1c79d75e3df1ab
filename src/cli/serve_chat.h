/* serve rows of the chat services (chat, udp-chat): their options, setup
 * and cleanup, referenced from serve_services.c. */
#ifndef SS_CLI_SERVE_CHAT_H
#define SS_CLI_SERVE_CHAT_H

#include "cli/serve.h"

extern const struct option serve_chat_longopts[];
extern const char serve_chat_help[];
int serve_chat_option(struct serve_ctx *sc, int opt, const char *arg);
int serve_chat_setup(struct serve_ctx *sc);
void serve_chat_cleanup(struct serve_ctx *sc);
int serve_chat_attach(struct serve_ctx *sc, ss_server *srv);
void serve_chat_detach(struct serve_ctx *sc);

int serve_udpchat_setup(struct serve_ctx *sc);
void serve_udpchat_cleanup(struct serve_ctx *sc);

/* Raise RLIMIT_NOFILE's soft limit to its hard limit (10,000 clients need
 * more than the usual 1024). Returns the new soft limit. */
long serve_raise_nofile(void);

#endif
