// Preloaded into the agent of the managed plugin (`node --require`, see config.json). It adapts
// the two things the agent takes for granted on a host and a plugin container does not give,
// by replacing two exports of dist/ before the agent starts. Drop it once the agent has options
// for both (the same env names would then be read by src/config.ts).
//
// 1. /proc/sys is read-only in a plugin: moby's default OCI spec lists it in ReadonlyPaths, and
//    runc refuses any mount inside /proc, so no config.json mount can make it writable. The
//    host's /proc/sys/net is bind-mounted read-write at /host/proc/sys/net instead (config.json;
//    net/ sysctls follow the netns of the writer, which is the host's: network type "host"), and
//    the agent's sysctl writes, all under net/, go there. Not CAP_SYS_ADMIN to remount /proc/sys.
// 2. Docker names a managed plugin's driver by the plugin's full name (sluice/sluice:latest),
//    not by its socket's name: the agent's lookups of its Docker networks (reconciliation, and
//    the networks it creates for `sluice network create`) must use that name (SLUICE_DRIVER_NAME).
'use strict';
const path = require('node:path');
const { writeFile } = require('node:fs/promises');

const dist = path.join(__dirname, 'dist');
const SYSCTL_NET = process.env.SLUICE_SYSCTL_NET_DIR || '/host/proc/sys/net';
const DRIVER_NAME = process.env.SLUICE_DRIVER_NAME;

function replaceExport(file, name, type, value) {
  const mod = require(path.join(dist, file));
  if (typeof mod[name] !== type) {
    throw new Error(`plugin shim: dist/${file} no longer exports ${type} ${name}: update plugin/shim.js`);
  }
  mod[name] = value;
}

const writeProcSys = (key, value) =>
  writeFile(key.startsWith('net/') ? `${SYSCTL_NET}/${key.slice('net/'.length)}` : `/proc/sys/${key}`, value);
replaceExport('dataplane/linux/linux-dataplane.js', 'writeProcSys', 'function', writeProcSys);

if (DRIVER_NAME) replaceExport('labels/docker.js', 'DRIVER_NAME', 'string', DRIVER_NAME);
