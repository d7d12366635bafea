/**
 * A standalone entry for the audit commands (`node --import tsx packages/api/src/audit/cliMain.ts
 * audit verify --data-dir DIR`), so they run and are tested without the main `kyrodb` CLI.
 */
import { Command } from 'commander';
import { registerAuditCommands } from './cli.js';

const program = new Command('kyrodb');
registerAuditCommands(program);
await program.parseAsync(process.argv);
