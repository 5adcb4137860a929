// Public API of the channel layer.
export { Channel, Loan, Message, type ChannelOptions, type ChannelEvents, type PeerUpEvent, type PeerDownEvent, type ViolationEvent, type ChannelCounters } from './channel.js';
export { Publisher, Subscriber, Sample, SampleLoan, type PublisherOptions, type SubscriberOptions, type OverflowPolicy } from './pubsub.js';
export { type WaitMode, type WaitOptions } from './wait-modes.js';
export { IVSHM_PROTO_CHANNEL, IVSHM_PROTO_USER_MIN, IVSHM_PROTO_USER_MAX, outputSizeFor } from './layout.js';
