/* The serving side of the data-plane protocol: answers requests on a connection by
 * calling a data plane's operation table, and keeps the record LIST answers from (what
 * was attached, created and assigned, as the data plane accepted it). One thread. */
#pragma once
#include "proto.h"

struct elvis_dpp_server;

int elvis_dpp_server_new(const struct elvis_dataplane_ops *ops, void *dp, struct elvis_dpp_server **ret);
void elvis_dpp_server_free(struct elvis_dpp_server *s);
/* Reads one request from conn and answers it (a malformed one with an error reply).
 * Returns 0 to keep the connection, or a negative errno when it is finished (EOF, a
 * socket error); the caller then closes conn. */
int elvis_dpp_server_handle(struct elvis_dpp_server *s, int conn);
/* The connection conn is closed: forget what was kept for it. */
void elvis_dpp_server_forget(struct elvis_dpp_server *s, int conn);
/* Whether a STOP was answered: the caller stops serving and ends the data plane. */
bool elvis_dpp_server_stopping(const struct elvis_dpp_server *s);
