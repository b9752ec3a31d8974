export function ephemeralLow(): number;
export function freePort(host?: string, options?: { not?: number[] }): Promise<number>;
export function isAddressInUse(err: unknown): boolean;
