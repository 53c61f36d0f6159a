/* The command-line clients built into the sidestep binary: `sidestep ctl` (the admin API) and
 * `sidestep drill` (a failover drill with its own steady traffic). Each takes argv after the
 * sub-command name (argv[0] is "ctl" or "drill") and returns the process exit status. */
#ifndef SST_TOOLS_H
#define SST_TOOLS_H

int sst_ctl_main(int argc, char **argv);
int sst_drill_main(int argc, char **argv);

#endif
