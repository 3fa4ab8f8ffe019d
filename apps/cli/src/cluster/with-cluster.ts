/** What every cluster command shares: the flags that name the cluster and a connection for the command's life. */
import type { Command } from 'commander';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ClusterFlags } from './connection.js';

export const clusterOptions = (cmd: Command) =>
  cmd
    .option('--nats <url>', 'NATS server(s), comma-separated (default: CAIRN_NATS, else the cluster cairn up runs, else nats://127.0.0.1:4222)')
    .option('--client <id>', 'your client ID, as NATS permissions know it (default: CAIRN_CLIENT, else your user name)');

/** Runs `body` with a connection (as the client, or as cairn up's admin). */
export async function withCluster(
  flags: ClusterFlags,
  body: (nc: NatsConnection, client: string) => Promise<void>,
  as: 'client' | 'admin' = 'client',
): Promise<void> {
  const { clientId, connectCluster } = await import('./connection.js');
  const client = clientId(flags);
  let nc: NatsConnection | undefined;
  try {
    nc = await connectCluster(flags, client, as);
    await body(nc, client);
  } finally {
    await nc?.close();
  }
}
