// The public API is a deliberate list: every name exported from the package
// root is pinned here (a change to it is a visible decision in a diff), and
// every one carries TSDoc. Read from the emitted declarations with the
// TypeScript compiler, so types count as well as values.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const here = path.dirname(fileURLToPath(import.meta.url));
const entry = path.resolve(here, '../src/index.d.ts');

const EXPORTS = `
BridgeLink Broker BrokerLog BrokerOptions BrokerPeerStatus BusyError CellLinkEndpoint CellStatus Channel
ChannelCounters ChannelEvents ChannelOptions CheckResult ClosedError ConfigError ConnectOptions
ConnectQemuOptions ControlRequest ControlResults CounterReporter Device DriverSegment EndpointCounters
EndpointEvents InterruptEvent InvalidArgumentError IVSHM_NET_STATE_INIT IVSHM_NET_STATE_READY
IVSHM_NET_STATE_RESET IVSHM_NET_STATE_RUN IVSHM_PROTO_CHANNEL IVSHM_PROTO_USER_MAX IVSHM_PROTO_USER_MIN
IVSHM_REG_DOORBELL IVSHM_REG_ID IVSHM_REG_INT_CONTROL IVSHM_REG_MAX_PEERS IVSHM_REG_STATE IvshmError
IvshmErrorCode IvshmemEndpoint LinkCounters LinkParams LinkParamsInput LinkStatus LocalEndpoint LocalLink
LocalLinkOptions Loan Message NetCounters NetEndpoint NetOptions NetSizing NetStateEvent NetViolation
NotSupportedError OsError OverflowPolicy ParamProblem PeerDownEvent PeerGoneError PeerUpEvent
PeerViolationError PermissionError Problem ProtocolError Publisher PublisherCounters PublisherEvents
PublisherOptions QemuEndpoint QemuServer QemuServerOptions RateSample RefusedError RunningSystem Sample
SampleLoan SectionSizes SplitRingLayout Subscriber SubscriberCounters SubscriberEvents SubscriberOptions
Supervisor SupervisorOptions SystemStatus TapBridge TapBridgeCounters TapBridgeOptions TapDevice
TapOptions TimeoutError UpOptions VIRTIO_F_ACCESS_PLATFORM VIRTIO_F_EVENT_IDX VIRTIO_F_INDIRECT_DESC
VIRTIO_F_IN_ORDER VIRTIO_F_VERSION_1 VIRTQ_AVAIL_F_NO_INTERRUPT VIRTQ_DESC_F_INDIRECT VIRTQ_DESC_F_NEXT
VIRTQ_DESC_F_WRITE VIRTQ_MAX_SIZE VIRTQ_USED_F_NO_NOTIFY VIRTQ_VIOLATIONS ViolationEvent ViolationInfo
VirtqDevice VirtqDeviceOptions VirtqDriver VirtqDriverOptions VirtqViolation WaitMode WaitOptions
checkLinkParams checkSystemFile checkSystemText cellLinks connect connectQemu controlRequest deriveMac
ivshmNetSizing openNet openTap outputSizeFor splitRingLayout upSystem vringNeedEvent
`.split(/\s+/).filter(Boolean).sort();

let cached: { name: string; doc: string }[] | undefined;
function publicSymbols(): { name: string; doc: string }[] {
  if (cached) return cached;
  const program = ts.createProgram([entry], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, noEmit: true });
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(entry);
  assert.ok(file, `${entry} was not emitted; build first`);
  const moduleSymbol = checker.getSymbolAtLocation(file);
  assert.ok(moduleSymbol);
  cached = checker.getExportsOfModule(moduleSymbol).map((s) => {
    const target = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
    return { name: s.getName(), doc: ts.displayPartsToString(target.getDocumentationComment(checker)).trim() };
  });
  return cached;
}

test('the package root exports exactly the pinned names', () => {
  const names = publicSymbols().map((s) => s.name).sort();
  const added = names.filter((n) => !EXPORTS.includes(n));
  const removed = EXPORTS.filter((n) => !names.includes(n));
  assert.deepEqual({ added, removed }, { added: [], removed: [] }, 'a change to the public API must be made here on purpose');
});

test('every public name has TSDoc', () => {
  const undocumented = publicSymbols().filter((s) => s.doc === '').map((s) => s.name).sort();
  assert.deepEqual(undocumented, [], 'write a /** ... */ comment on each of these declarations');
});

test('@internal members are stripped from the shipped declarations', async () => {
  const fs = await import('node:fs');
  const walk = (d: string): string[] =>
    fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : e.name.endsWith('.d.ts') ? [path.join(d, e.name)] : []));
  const leaks = walk(path.dirname(entry)).filter((f) => fs.readFileSync(f, 'utf8').includes('@internal'));
  assert.deepEqual(leaks, []);
});
