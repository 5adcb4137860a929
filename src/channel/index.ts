// Public API of the channel layer.
export { Channel, type ChannelOptions, type ChannelEvents, type ChannelCounters, type PeerUpEvent, type PeerDownEvent, type ViolationEvent } from './channel.js';
export { Message, Loan } from './message.js';
export { Publisher, SampleLoan, type PublisherOptions, type PublisherEvents, type PublisherCounters, type OverflowPolicy } from './publisher.js';
export { Subscriber, type SubscriberOptions, type SubscriberEvents, type SubscriberCounters } from './subscriber.js';
export { Sample } from './sample.js';
export { type WaitMode, type WaitOptions } from '../ivshmem/wait.js';
export { IVSHM_PROTO_CHANNEL, IVSHM_PROTO_USER_MIN, IVSHM_PROTO_USER_MAX, outputSizeFor } from './layout.js';
