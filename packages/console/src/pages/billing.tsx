import type { PageProps } from "../pages";
import { Page } from "../ui";

// PLACEHOLDER: replaced by the real page.
export default function Placeholder(_: PageProps) {
  return <Page title="billing">{null}</Page>;
}
