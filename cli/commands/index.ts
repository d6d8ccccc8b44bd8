// The shoal CLI's top-level commands, in `--help` order. The swarm, node, service, secret, config,
// network, stack and exec commands are added here as their parts land: each is a CliCommand
// (context.ts) in its own module under commands/, using ctx.client(argv) for the daemon API,
// format/table.ts for docker-style tables and format/template.ts for `--format`.
import type { CliCommand } from '../context.js';
import { labCommand } from '../lab/command.js';
import { configCommand } from './config.js';
import { execCommand } from './exec.js';
import { infoCommand } from './info.js';
import { networkCommand } from './network.js';
import { nodeCommand } from './node.js';
import { secretCommand } from './secret.js';
import { serviceCommand } from './service.js';
import { stackCommand } from './stack.js';
import { swarmCommand } from './swarm.js';
import { versionCommand } from './version.js';

export const COMMANDS: readonly CliCommand[] = [infoCommand, versionCommand, swarmCommand, nodeCommand, serviceCommand, secretCommand, configCommand, stackCommand, networkCommand, execCommand, labCommand];
